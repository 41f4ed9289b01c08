"""Routing benchmark: EllieSQL's text-to-SQL pipelines and the routers that choose between them.

    .venv/bin/python benchmarks/routing.py --spider tests/data/spider [--model smollm2-135m]
        [--per-db 2] [--max-tokens 128] [--folds 5] [--run runs/routing/spider.jsonl]

Runs the basic, intermediate, advanced and cascade pipelines on the first `--per-db` Spider dev
questions of every database, then the routed systems (rules, kNN and logistic on MiniLM,
the SmolLM2 classifier and DPO routers, random, and the oracle as the ceiling), each
cross-validated by database from the pipelines' attempts. Prints, per system: execution
accuracy (EX), mean tokens and dollars per question, cost-of-pass, TEP against always-basic
and against always-advanced, where the routed systems sent the questions and their decision
time. The run log resumes: rerun to finish a cut-off run.
With an API key, `--model openai/gpt-4o-mini` runs the same benchmark through LiteLLM.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUTERS = ("rules", "knn", "logistic", "slm", "dpo", "random", "oracle")


def main() -> None:
    """Run the pipelines and routed systems, then print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spider", type=Path, default=ROOT / "tests" / "data" / "spider")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--per-db", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "routing" / "spider.jsonl")
    args = parser.parse_args()

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from evals.benchmarks.registry import load_benchmark
    from evals.metrics.summary import summarize_system
    from evals.metrics.tep import tep
    from evals.runner import RunOptions, run_systems
    from evals.systems import parse_system
    from llm_eff.core.errors import UserError
    from llm_eff.core.runlog import RunLog

    console = Console(width=180)
    bench = load_benchmark(f"spider-dev:{args.spider}")
    per_db: Counter[str] = Counter()
    ids = []
    for task in bench.tasks:
        db = task.metadata["category"]
        if per_db[db] < args.per_db:
            per_db[db] += 1
            ids.append(task.id)
    common = f"base={args.model},max_tokens={args.max_tokens}"
    pipelines = [
        parse_system(f"sql-{p}:{common}") for p in ("basic", "intermediate", "advanced", "cascade")
    ]
    routed = [parse_system(f"routed:{k}:{common},folds={args.folds}") for k in ROUTERS]
    systems = pipelines + routed
    log = RunLog(args.run)
    options = RunOptions(task_ids=tuple(ids), batch_size=args.batch_size)
    console.print(
        f"{len(ids)} questions from {len(per_db)} databases, model {args.model}, run log {args.run}"
    )
    with Progress(console=console) as bar:
        tasks = {s.name: bar.add_task(s.name, total=len(ids)) for s in systems}
        done = {(a.system_hash, a.task_id) for a in log.read()}
        for s in systems:
            bar.update(tasks[s.name], completed=sum((s.hash, i) in done for i in ids))
        advance = lambda name, n: bar.advance(tasks[name], n)  # noqa: E731
        run_systems(bench, pipelines, log, options, advance)
        failed: dict[str, str] = {}
        for s in routed:  # a router with nothing to learn from is reported, not fatal
            try:
                run_systems(bench, [s], log, options, advance)
            except UserError as exc:
                failed[s.name] = str(exc)
    wanted = set(ids)
    by_hash: dict[str, list] = {}
    for a in log.read():
        if a.task_id in wanted:
            by_hash.setdefault(a.system_hash, []).append(a)
    systems = [s for s in systems if s.name not in failed]
    summaries = {s.name: summarize_system(by_hash[s.hash]) for s in systems}
    basic, advanced = summaries["sql-basic"], summaries["sql-advanced"]
    table = Table(
        title=f"Spider dev, {len(ids)} questions, {args.model}: pipelines and routers "
        f"({args.folds}-fold cross-validation by database)"
    )
    for col in (
        "system",
        "EX",
        "tokens/q",
        "$/q",
        "cost-of-pass",
        "TEP vs basic",
        "TEP vs advanced",
        "routed to (b/i/a)",
        "decision ms p50",
    ):
        table.add_column(col, justify="left" if col == "system" else "right")

    def show(value: float | None, verdict: str) -> str:
        return f"{verdict}" if value is None else f"{value:+.2f} ({verdict})"

    for s in systems:
        m = summaries[s.name]
        vs_basic = tep(m.accuracy, m.tokens_per_attempt, basic.accuracy, basic.tokens_per_attempt)
        vs_adv = tep(
            m.accuracy, m.tokens_per_attempt, advanced.accuracy, advanced.tokens_per_attempt
        )
        share, ms = "-", "-"
        if s.kind == "routed":
            attempts = by_hash[s.hash]
            count = Counter(a.details.get("routed_to") for a in attempts)
            share = "/".join(str(count[p]) for p in ("basic", "intermediate", "advanced"))
            ms = f"{statistics.median(a.details.get('decision_ms', 0.0) for a in attempts):.3f}"
        table.add_row(
            s.name,
            f"{m.accuracy:.1%}",
            f"{m.tokens_per_attempt:,.0f}",
            f"{m.dollars_per_attempt:.6f}",
            "inf" if m.cost_of_pass == float("inf") else f"{m.cost_of_pass:.6f}",
            "-" if s.name == "sql-basic" else show(vs_basic.value, vs_basic.verdict),
            "-" if s.name == "sql-advanced" else show(vs_adv.value, vs_adv.verdict),
            share,
            ms,
        )
    console.print(table)
    for name, reason in failed.items():
        console.print(f"{name}: not run - {reason}")
    learned = [
        summaries[n]
        for n in summaries
        if n.startswith("routed:") and n != "routed:oracle" and n != "routed:random"
    ]
    if not learned:
        return
    best = max(learned, key=lambda m: (m.accuracy, -m.tokens_per_attempt))
    saving = 1 - best.tokens_per_attempt / advanced.tokens_per_attempt
    console.print(
        f"best router {best.system}: EX {best.accuracy:.1%} vs advanced {advanced.accuracy:.1%} "
        f"({(best.accuracy - advanced.accuracy) * 100:+.1f} points) with {saving:.0%} fewer "
        f"tokens; oracle ceiling {summaries['routed:oracle'].accuracy:.1%} at "
        f"{summaries['routed:oracle'].tokens_per_attempt:,.0f} tokens/q"
    )


if __name__ == "__main__":
    main()
