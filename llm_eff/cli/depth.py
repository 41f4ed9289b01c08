"""`llm-eff depth`: Dr.LLM routers that skip, execute or repeat layers per sequence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llm_eff.cli.app import app, friendly, progress_bar

depth_app = typer.Typer(
    help="Dynamic depth: train Dr.LLM layer routers over a frozen model and compare them with "
    "full depth, random skipping and static pruning.",
    no_args_is_help=True,
)
app.add_typer(depth_app, name="depth")


@depth_app.command("train-routers")
@friendly
def train_routers(
    out: Annotated[Path, typer.Option(help="Directory for the routers (a drllm:DIR system).")],
    model: Annotated[
        str, typer.Option(help="Base model: smollm2-135m, tiny-llama or hf:DIR.")
    ] = "smollm2-135m",
    task: Annotated[str, typer.Option(help="Training task: arith (multiple choice).")] = "arith",
    train: Annotated[int, typer.Option(min=1, help="Training examples (plans searched).")] = 100,
    test: Annotated[int, typer.Option(min=1, help="Held-out examples to evaluate.")] = 100,
    simulations: Annotated[int, typer.Option(min=1, help="MCTS simulations per example.")] = 40,
    length_penalty: Annotated[
        float, typer.Option(min=0.0, help="Reward cost of a full-depth plan.")
    ] = 0.2,
    epochs: Annotated[int, typer.Option(min=1, help="Router training epochs.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (examples, search).")] = 0,
) -> None:
    """Search cheapest-correct layer plans by MCTS, fit the routers, save them, and print the
    held-out table: full depth, routed, random skipping, static pruning."""
    from rich.console import Console
    from rich.table import Table

    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.depth.router import DrLLM
    from llm_eff.depth.tasks import split_examples
    from llm_eff.depth.train import collect_plans, evaluate_depth, fit_routers
    from llm_eff.models import parse_model

    console = Console()
    train_set, test_set = split_examples(task, train, test, seed)
    base, tokenizer = load_local(parse_model(model))
    routed = DrLLM(base, model)
    with progress_bar(console) as bar:
        jobs: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in jobs:
                jobs[phase] = bar.add_task(phase, total=total)
            bar.update(jobs[phase], completed=done)

        labels = collect_plans(routed, tokenizer, train_set, simulations, length_penalty,
                               seed, progress)  # fmt: skip
        fit = fit_routers(routed, tokenizer, train_set, labels, epochs, seed=seed,
                          progress=progress)  # fmt: skip
        routed.save(out)
        results = evaluate_depth(routed, tokenizer, test_set, labels, seed, progress)
    summary = {"task": task, "train": train, "test": test, "search_seconds": labels.seconds,
               "plans_evaluated": labels.evaluated, "fit": fit, "results": results}  # fmt: skip
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = Table("system", "accuracy", "mean layers executed")
    for name, row in results.items():
        table.add_row(name, f"{row['accuracy']:.1%}", f"{row['mean_layers']:.2f}")
    console.print(table)
    console.print(f"routers saved to {out}; evaluate with --system drllm:{out}")
