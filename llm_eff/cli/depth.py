"""`llm-eff depth`: Dr.LLM routers that skip, execute or repeat layers per sequence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llm_eff.core.cli import Commands, friendly, make_console, progress_bar

COMMANDS = Commands()

depth_app = typer.Typer(
    help="Dynamic depth: train-routers fits Dr.LLM layer routers over a frozen model (compared "
    "with full depth, random skipping and static pruning); train-mor trains a "
    "Mixture-of-Recursions model (shared layers applied a per-token number of times).",
    no_args_is_help=True,
)
COMMANDS.group(depth_app, "depth")


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
    from rich.table import Table

    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.depth.router import DrLLM
    from llm_eff.depth.tasks import split_examples
    from llm_eff.depth.train import collect_plans, evaluate_depth, fit_routers
    from llm_eff.models import parse_model

    console = make_console()
    train_set, test_set = split_examples(task, train, test, seed)
    base, tokenizer = load_local(parse_model(model))
    routed = DrLLM(base, model)
    with progress_bar(console) as bar:
        jobs: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in jobs:
                jobs[phase] = bar.add_task(phase, total=total)
            bar.update(jobs[phase], completed=done)

        labels = collect_plans(
            routed, tokenizer, train_set, simulations, length_penalty, seed, progress
        )
        fit = fit_routers(
            routed, tokenizer, train_set, labels, epochs, seed=seed, progress=progress
        )
        routed.save(out)
        results = evaluate_depth(routed, tokenizer, test_set, labels, seed, progress)
    summary = {
        "task": task,
        "train": train,
        "test": test,
        "search_seconds": labels.seconds,
        "plans_evaluated": labels.evaluated,
        "fit": fit,
        "results": results,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = Table("system", "accuracy", "mean layers executed")
    for name, row in results.items():
        table.add_row(name, f"{row['accuracy']:.1%}", f"{row['mean_layers']:.2f}")
    console.print(table)
    console.print(f"routers saved to {out}; evaluate with --system drllm:{out}")


@depth_app.command("train-mor")
@friendly
def train_mor(
    out: Annotated[Path, typer.Option(help="Directory for the trained model (an hf:DIR system).")],
    recursions: Annotated[int, typer.Option(help="Recursions of the shared block (N_r).")] = 3,
    router: Annotated[str, typer.Option(help="expert, token or none.")] = "expert",
    kv_cache: Annotated[str, typer.Option(help="recursion (per depth) or shared.")] = "recursion",
    layers: Annotated[int, typer.Option(help="Effective depth with every recursion.")] = 8,
    hidden: Annotated[int, typer.Option(min=16, help="Hidden size.")] = 256,
    heads: Annotated[int, typer.Option(min=1, help="Attention heads.")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 300,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per step.")] = 8,
    seq_len: Annotated[int, typer.Option(min=8, help="Tokens per sequence.")] = 256,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")] = 3e-3,
    corpus: Annotated[
        Path, typer.Option(help="Cache of the tokenized standard-library corpus.")
    ] = Path("runs/mor/corpus"),
    seed: Annotated[int, typer.Option(help="Random seed (init, batches).")] = 0,
) -> None:
    """Train a Mixture-of-Recursions model from scratch on the Python standard library's source
    (accelerate; GPU and bf16 when there is one), save it with its tokenizer, and print validation
    perplexity, layers per token and the training FLOPs spent."""
    import math

    from llm_eff.core.errors import UserError
    from llm_eff.mor.train import (
        ModelSpec,
        build_corpus,
        make_model,
        train_to_budget,
        validation_perplexity,
    )

    console = make_console()
    spec = ModelSpec(
        "mor",
        "mor",
        layers,
        hidden,
        hidden * 8 // 3 // 8 * 8,
        heads,
        heads,
        recursions,
        router,
        kv_cache,
    )
    train_ids, val_ids, vocab = build_corpus(corpus)
    try:
        model = make_model(spec, vocab, seed)
    except ValueError as exc:
        raise UserError(f"invalid MoR settings: {exc}") from None
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with progress_bar(console) as bar:
        job = bar.add_task("train", total=1.0)
        result = train_to_budget(
            model.to(device),
            train_ids,
            math.inf,
            batch_size=batch_size,
            seq_len=seq_len,
            lr=lr,
            seed=seed,
            max_steps=steps,
            on_step=lambda p: bar.update(job, completed=p),
            mixed_precision="bf16" if device == "cuda" else "no",
        )
    ppl, val_layers = validation_perplexity(
        model, val_ids, seq_len=seq_len, batches=8, batch_size=batch_size
    )
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from llm_eff.models.embedded import embedded_model_dir

    hf_logging.disable_progress_bar()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(embedded_model_dir())).save_pretrained(out)
    (out / "training.json").write_text(
        json.dumps(
            {
                "steps": result.steps,
                "tokens": result.tokens,
                "flops": result.flops,
                "seconds": result.seconds,
                "val_ppl": ppl,
                "val_layers_per_token": val_layers,
            },
            indent=2,
        )
    )
    console.print(
        f"{result.steps} steps, {result.tokens:,} tokens, {result.flops:.3g} FLOPs in "
        f"{result.seconds:.0f} s; validation perplexity {ppl:.2f} at {val_layers:.2f} "
        f"of {layers} layers per token; saved to {out} (use --system hf:{out})"
    )
