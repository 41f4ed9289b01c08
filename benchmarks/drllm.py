"""Dr.LLM on the embedded model: routed depth against full depth, random skipping and static
pruning, on held-out multiple-choice arithmetic.

    .venv/bin/python benchmarks/drllm.py [--model smollm2-135m] [--train 100] [--test 100]
        [--simulations 40] [--out runs/drllm]

Searches supervision plans by MCTS on the training questions, fits the routers (the base model
stays frozen), then prints accuracy and mean layers executed on the held-out questions for the
four systems, and the time the search and the router fitting took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Search, fit, evaluate, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--train", type=int, default=100)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--simulations", type=int, default=40)
    parser.add_argument("--length-penalty", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "drllm")
    args = parser.parse_args()

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.depth.router import DrLLM
    from llm_eff.depth.tasks import split_examples
    from llm_eff.depth.train import collect_plans, evaluate_depth, fit_routers
    from llm_eff.models import parse_model

    console = Console(width=160)
    train, test = split_examples("arith", args.train, args.test, args.seed)
    base, tokenizer = load_local(parse_model(args.model))
    routed = DrLLM(base, args.model)
    with Progress(console=console) as bar:
        jobs: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in jobs:
                jobs[phase] = bar.add_task(phase, total=total)
            bar.update(jobs[phase], completed=done)

        labels = collect_plans(
            routed, tokenizer, train, args.simulations, args.length_penalty, args.seed, progress
        )
        started = time.perf_counter()
        fit = fit_routers(
            routed, tokenizer, train, labels, args.epochs, seed=args.seed, progress=progress
        )
        fit_s = time.perf_counter() - started
        routed.save(args.out)
        results = evaluate_depth(routed, tokenizer, test, labels, args.seed, progress)
    usable = sum(p is not None for p in labels.plans)
    full_ok = sum(labels.full_correct)
    console.print(
        f"{args.model}, {routed.depth} layers; {args.train} training questions ({full_ok} right "
        f"at full depth, {usable} with a correct plan found), {args.test} held out; search "
        f"{labels.seconds:.0f} s ({labels.evaluated} plans), router fitting {fit_s:.0f} s"
    )
    table = Table("system", "held-out accuracy", "mean layers executed", "layers saved")
    for name, row in results.items():
        table.add_row(
            name,
            f"{row['accuracy']:.1%}",
            f"{row['mean_layers']:.2f}",
            f"{routed.depth - row['mean_layers']:.2f}",
        )
    console.print(table)
    summary = {
        **vars(args),
        "out": str(args.out),
        "fit": fit,
        "results": results,
        "search_seconds": labels.seconds,
        "fit_seconds": fit_s,
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
