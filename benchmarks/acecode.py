"""Code-efficiency RL: the base model against its PPO- and GRPO-tuned LoRA policies.

    .venv/bin/python benchmarks/acecode.py [--model smollm2-135m] [--ppo-steps 16]
        [--grpo-steps 16] [--samples 4] [--queries 10000] [--out runs/acecode]
        [--engine transformers]

Trains PPO and GRPO adapters on `efficiency:train` with the execution reward (both resume
from `--out` when rerun), then samples `--samples` programs per held-out problem
(`efficiency:test`, temperature 0.8) from each system and prints: pass@1, the share of
comparable problems (each system has a correct program) where the tuned policy's correct
programs run faster than the base model's (median CPU time of the workload), the median
runtime ratio tuned / base on those problems, tokens per problem, and cost-of-pass with the
training cost (training seconds at the local hardware price) spread over `--queries` queries.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def train(algo: str, args: argparse.Namespace, console) -> float:  # noqa: ANN001
    """Train (or resume) one adapter; returns its total training seconds."""
    from rich.progress import Progress

    from evals.benchmarks.registry import load_benchmark
    from llm_eff.rl.reward import RewardConfig
    from llm_eff.rl.train import rl_train

    out = args.out / algo
    steps = args.ppo_steps if algo == "ppo" else args.grpo_steps
    settings = {
        "steps": steps,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "learning_rate": args.lr,
        "save_every": 2,
    }
    if algo == "ppo":
        settings.update(batch_size=4, samples_per_prompt=2, minibatch_size=4)
    else:
        settings.update(batch_size=8, num_generations=4)
    seconds_file = out / "train_seconds.json"
    before = json.loads(seconds_file.read_text())["seconds"] if seconds_file.is_file() else 0.0
    started = time.perf_counter()
    with Progress(console=console) as bar:
        job = bar.add_task(f"{algo} training", total=steps)
        summary = rl_train(
            algo,
            args.model,
            load_benchmark("efficiency:train"),
            out,
            settings,
            RewardConfig(timeout_s=5.0),
            rank=8,
            progress=lambda s, t, _: bar.update(job, completed=s),
        )
    total = before + (time.perf_counter() - started if summary["steps_logged"] else 0.0)
    seconds_file.write_text(json.dumps({"seconds": total}))
    return total


def runtimes(attempts: list, system: str) -> dict[str, list[float]]:
    """Task id -> CPU runtimes of the system's passing programs."""
    out: dict[str, list[float]] = {}
    for a in attempts:
        if a.system == system and a.passed and a.details.get("runtime_s") is not None:
            out.setdefault(a.task_id, []).append(a.details["runtime_s"])
    return out


def main() -> None:
    """Train, evaluate and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ppo-steps", type=int, default=16)
    parser.add_argument("--grpo-steps", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "acecode")
    parser.add_argument(
        "--engine",
        default="transformers",
        help="engine of all three systems (the tuned ones run on transformers, so the base does)",
    )
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from evals.benchmarks.efficiency import load_efficiency
    from evals.metrics.summary import summarize
    from evals.runner import RunOptions, run_system
    from evals.systems import parse_system
    from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
    from llm_eff.core.runlog import RunLog

    console = Console(width=180)
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = {"ppo": train("ppo", args, console), "grpo": train("grpo", args, console)}
    bench = load_efficiency("test")
    log = RunLog(args.out / "eval.jsonl")
    decoding = f"samples={args.samples},temperature=0.8,max_tokens={args.max_new_tokens}"
    specs = {
        "base": f"{args.model}:{decoding},name=base",
        "ppo": f"{args.out / 'ppo'}:{decoding},name=ppo",
        "grpo": f"{args.out / 'grpo'}:{decoding},name=grpo",
    }
    started = time.perf_counter()
    for spec in specs.values():
        run_system(bench, parse_system(spec), log, RunOptions(seed=args.seed, engine=args.engine))
    eval_s = time.perf_counter() - started
    attempts = [a for a in log.read() if a.benchmark == bench.name]
    summaries = {s.system: s for s in summarize(attempts)}
    base_times = runtimes(attempts, "base")
    table = Table(
        "system",
        "pass@1",
        "faster than base",
        "median runtime ratio",
        "tokens / problem",
        "$ / attempt",
        "training $",
        "cost-of-pass (amortised)",
        "train s",
    )
    for name in specs:
        s = summaries[name]
        train_dollars = seconds.get(name, 0.0) * DEFAULT_HARDWARE_DOLLARS_PER_HOUR / 3600
        per_query = s.dollars_per_attempt + train_dollars / args.queries
        cop = per_query / s.accuracy if s.accuracy else float("inf")
        faster, ratio = "", ""
        if name != "base":
            mine = runtimes(attempts, name)
            common = sorted(set(mine) & set(base_times))
            ratios = [statistics.median(mine[t]) / statistics.median(base_times[t]) for t in common]
            wins = sum(r < 1.0 for r in ratios)
            faster = f"{wins}/{len(common)}" if common else "no comparable problem"
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        table.add_row(
            name,
            f"{s.accuracy:.1%}",
            faster,
            ratio,
            f"{s.tokens_per_attempt:,.0f}",
            f"{s.dollars_per_attempt:.6f}",
            f"{train_dollars:.5f}",
            "inf" if cop == float("inf") else f"{cop:.6f}",
            f"{seconds.get(name, 0.0):.0f}",
        )
    console.print(
        f"{len(bench.tasks)} held-out problems x {args.samples} samples; backbone {args.model}; "
        f"training cost spread over {args.queries:,} queries; evaluation {eval_s:.0f} s"
    )
    console.print(table)
    for algo in ("ppo", "grpo"):
        path = args.out / algo / ("log.jsonl" if algo == "ppo" else "summary.json")
        console.print(f"{algo} training log: {path}")


if __name__ == "__main__":
    main()
