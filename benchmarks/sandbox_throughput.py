"""Sandbox throughput: score NCB Python's 70 reference solutions with 1 and 2 workers.

    .venv/bin/python benchmarks/sandbox_throughput.py [--workers 1 2] [--limit N]

Prints wall time, tasks/s and the pass count per worker count, measured side by side in one
run, and the machine that ran it. Target: under 60 s for all 70 with 2 workers on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.table import Table

from evals.benchmarks import load_benchmark
from llm_eff.sandbox.isolation import isolation_mode


def score_all(workers: int, limit: int | None) -> tuple[float, int, int]:
    """(wall seconds, passed, total) for scoring the reference solutions with `workers`."""
    bench = load_benchmark("ncb-python")
    tasks = bench.tasks[:limit] if limit else bench.tasks
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda t: bench.score(t, bench.reference_output(t)), tasks))
    return time.perf_counter() - start, sum(o.passed for o in outcomes), len(tasks)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    console = Console()
    console.print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, sandbox isolation: {isolation_mode()}"
    )
    table = Table("workers", "tasks", "passed", "wall s", "tasks/s", "speed-up")
    base = None
    for workers in args.workers:
        wall, passed, total = score_all(workers, args.limit)
        base = base or wall
        table.add_row(
            str(workers),
            str(total),
            str(passed),
            f"{wall:.1f}",
            f"{total / wall:.2f}",
            f"{base / wall:.2f}x",
        )
    console.print(table)


if __name__ == "__main__":
    main()
