"""`llm-eff finetune`: train, save, reload and evaluate one parameter-efficient method."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_eff.core.cli import Commands, friendly, make_console, progress_bar
from llm_eff.peft.methods import method_help

COMMANDS = Commands()


@COMMANDS.command("finetune")
@friendly
def finetune_command(
    data: Annotated[
        Path,
        typer.Option(
            help="Training data: .jsonl/.json/.csv/.parquet or a datasets directory, with "
            "'prompt' + 'completion' or chat 'messages'."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Directory to write the adapter (or model) to.")],
    method: Annotated[str, typer.Option(help=method_help())] = "lora",
    model: Annotated[
        str,
        typer.Option(
            help="Base model: smollm2-135m, tiny-llama or hf:DIR; add :quant=int8|int4|nf4 "
            "to train over quantized weights."
        ),
    ] = "smollm2-135m",
    eval_data: Annotated[
        Path | None,
        typer.Option(help="Held-out examples to score (default: 10% of --data held out)."),
    ] = None,
    metric: Annotated[
        str, typer.Option(help="Scoring of generated answers: exact | sql (sqlglot-normalised).")
    ] = "exact",
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 100,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step.")] = 8,
    lr: Annotated[
        float | None, typer.Option(help="Learning rate (default: the method's own).")
    ] = None,
    max_length: Annotated[int, typer.Option(min=8, help="Tokens per example (truncated).")] = 512,
    pack: Annotated[
        bool, typer.Option(help="Concatenate examples into rows of exactly --max-length.")
    ] = False,
    rank: Annotated[int, typer.Option(min=1, help="LoRA/1-bit adapter rank.")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA scaling alpha.")] = 16.0,
    target_modules: Annotated[
        str | None,
        typer.Option(help="Comma-separated module names for LoRA/1-bit (default: all linear)."),
    ] = None,
    reduction: Annotated[
        int, typer.Option(min=1, help="Width reduction r of the LST/UniPT side network.")
    ] = 8,
    eval_limit: Annotated[int, typer.Option(min=0, help="Examples to generate and score.")] = 50,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per scored answer.")] = 128,
    table: Annotated[
        Path, typer.Option(help="Comparison table (JSONL; a .md copy is written beside it).")
    ] = Path("runs/finetune-table.jsonl"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Fine-tune with one method, save the adapter, reload it, score it, and add a row to the
    comparison table (trainable parameters, peak training memory, step time, tokens/s,
    adapter size, score)."""

    from llm_eff.peft.config import DEFAULT_TARGETS, MethodConfig
    from llm_eff.peft.table import append_row, markdown, rich_table
    from llm_eff.peft.train import TrainConfig, finetune

    console = make_console()
    targets = (
        tuple(t.strip() for t in target_modules.split(",") if t.strip())
        if target_modules
        else DEFAULT_TARGETS
    )
    method_config = MethodConfig(
        method, rank=rank, alpha=alpha, target_modules=targets, reduction=reduction
    )
    train = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        max_length=max_length,
        pack=pack,
        seed=seed,
        eval_limit=eval_limit,
        metric=metric,
        max_new_tokens=max_new_tokens,
    )
    with progress_bar(console) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                label = f"{method_config.method}: training" if phase == "train" else "scoring"
                tasks[phase] = bar.add_task(label, total=total)
            bar.update(tasks[phase], completed=done)

        row = finetune(model, data, out, method_config, train, eval_data, overwrite, progress)
    rows = append_row(table, row)
    from llm_eff.core.atomic import atomic_write

    atomic_write(table.with_suffix(".md"), markdown(rows))
    console.print(rich_table(rows))
    console.print(
        f"saved {method_config.method} to {out} (reload "
        f"{'reproduces' if row['reload_exact'] else 'DOES NOT reproduce'} the trained logits); "
        f"table: {table} and {table.with_suffix('.md')}"
    )
