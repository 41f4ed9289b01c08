"""Agent configuration sweep on the offline GAIA-format task set: what each module costs and
what it buys.

    .venv/bin/python benchmarks/agents.py [--model smollm2-135m] [--tasks DIR] [--limit N]
        [--parallel N] [--run runs/bench-agents.jsonl] [--report DIR]

Runs 8 configurations, from the richest (re-plan every step, LLM-summarised memory, 6 steps,
best-of-3 by vote) to pruned ones, over every task, then prints accuracy, $ and tokens per
task, cost-of-pass, whether the configuration is on the cost/accuracy frontier, and the
recommended configuration: the lowest cost-of-pass among those keeping >= 95% of the best
accuracy. With OPENAI_API_KEY set, the same grid also runs on `--api-model`
(gpt-4o-mini by default) through LiteLLM. The run log resumes when rerun.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALL_TOOLS = ["python", "read_file", "calculator", "sql"]
GRID = [  # (name, settings)
    ("rich", {"planning": "every:1", "memory": "summary", "max_steps": 6, "scaling": "vote:3"}),
    ("replan2-summary-6", {"planning": "every:2", "memory": "summary", "max_steps": 6}),
    ("plan-once-simple-6", {"planning": "once", "memory": "simple", "max_steps": 6}),
    ("no-plan-simple-6", {"planning": "none", "memory": "simple", "max_steps": 6}),
    ("no-plan-simple-3", {"planning": "none", "memory": "simple", "max_steps": 3}),
    ("no-plan-no-memory-3", {"planning": "none", "memory": "none", "max_steps": 3}),
    ("replan1-simple-3", {"planning": "every:1", "memory": "simple", "max_steps": 3}),
    (
        "no-plan-simple-4-vote3",
        {"planning": "none", "memory": "simple", "max_steps": 4, "scaling": "vote:3"},
    ),
]


def configs_for(model: str, max_tokens: int) -> list:
    """The grid's configurations on one backbone model."""
    from agents.config import AgentConfig

    short = model.split("/")[-1]
    return [
        AgentConfig(
            name=f"{short} {name}", model=model, tools=ALL_TOOLS, max_tokens=max_tokens, **settings
        )
        for name, settings in GRID
    ]


def main() -> None:
    """Run the sweep and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--api-model", default="openai/gpt-4o-mini")
    parser.add_argument("--tasks", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument(
        "--parallel", type=int, default=1, help="tasks solved at once, their calls batched"
    )
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "bench-agents.jsonl")
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from agents.system import agent_system, recommend, run_agents
    from evals.benchmarks.gaia import MINI_TASKS, load_gaia
    from evals.metrics.summary import summarize
    from evals.runner import pending, select_tasks
    from llm_eff.core.runlog import RunLog

    console = Console(width=200)
    directory = args.tasks or MINI_TASKS
    benchmark = load_gaia(directory)
    tasks = select_tasks(benchmark, args.limit)
    configs = configs_for(args.model, args.max_tokens)
    if os.environ.get("OPENAI_API_KEY"):
        configs += configs_for(args.api_model, 256)
    bench = benchmark.name
    log = RunLog(args.run)
    systems = [agent_system(c) for c in configs]
    with Progress(console=console) as bar:
        job = bar.add_task("agent attempts", total=len(tasks) * len(configs))
        done = log.done_keys()
        left = sum(len(pending(benchmark, tasks, s, done)) for s in systems)
        bar.update(job, completed=len(tasks) * len(configs) - left)
        run_agents(
            benchmark,
            systems,
            log,
            args.limit,
            progress=lambda name, n: bar.advance(job, n),
            parallel=args.parallel,
        )
    hashes = {s.hash for s in systems}
    ids = {t.id for t in tasks}
    attempts = [
        a
        for a in log.read()
        if a.benchmark == bench and a.system_hash in hashes and a.task_id in ids
    ]
    summaries = summarize(attempts)
    frontier = set()
    for s in summaries:  # nothing else is at least as accurate for less money per task
        if not any(
            o.accuracy >= s.accuracy and o.dollars_per_attempt < s.dollars_per_attempt
            for o in summaries
        ):
            frontier.add(s.system)
    table = Table(
        "configuration",
        "accuracy",
        "$ / task",
        "tokens / task",
        "LLM calls / task",
        "cost-of-pass",
        "frontier",
    )
    calls = {
        s.system: sum(a.details.get("llm_calls", 0) for a in attempts if a.system == s.system)
        / max(1, s.attempts)
        for s in summaries
    }
    for s in sorted(summaries, key=lambda s: -s.dollars_per_attempt):
        table.add_row(
            s.system,
            f"{s.accuracy:.1%}",
            f"{s.dollars_per_attempt:.6f}",
            f"{s.tokens_per_attempt:,.0f}",
            f"{calls[s.system]:.1f}",
            "inf" if s.cost_of_pass == float("inf") else f"{s.cost_of_pass:.6f}",
            "yes" if s.system in frontier else "",
        )
    console.print(f"{len(tasks)} tasks from {directory}; backbone {args.model}")
    console.print(table)
    pick, best = recommend(summaries)
    rich_row = next((s for s in summaries if s.system.endswith(" rich")), None)
    console.print(
        f"recommended: {pick.system} (accuracy {pick.accuracy:.1%}; best {best:.1%})"
        + (
            f"; richest configuration: accuracy {rich_row.accuracy:.1%}, "
            f"${rich_row.dollars_per_attempt:.6f} per task"
            if rich_row
            else ""
        )
    )
    if args.report:
        from evals.report import write_report

        files = write_report([], args.report, "agent configurations", attempts=attempts)
        console.print(f"report: {files.html}")


if __name__ == "__main__":
    main()
