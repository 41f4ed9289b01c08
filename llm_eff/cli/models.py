"""`llm-eff models`: the models usable offline and how to install the missing ones."""

from __future__ import annotations

from llm_eff.core.cli import Commands, friendly, make_console

COMMANDS = Commands()


@COMMANDS.command("models")
@friendly
def models_command() -> None:
    """List the models usable offline and how to install missing ones."""
    from rich.table import Table

    from llm_eff.models.registry import available_models

    table = Table("model", "status", "description")
    for row in available_models():
        table.add_row(*row)
    console = make_console()
    console.print(table)
    console.print(
        "Also: hf:DIR (a local HF model folder) and API ids through LiteLLM, "
        "e.g. openai/gpt-4o-mini (needs its API key)."
    )
