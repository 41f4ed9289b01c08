"""Sandbox throughput: per-program start-up cost and NCB Python's 70 reference solutions with
1 and 2 workers, for each isolation mode, side by side in one run.

    .venv/bin/python benchmarks/sandbox_throughput.py [--modes bwrap namespaces-root]
        [--workers 1 2] [--limit N] [--starts 20]

Each mode runs in a child process (the mode is chosen once per process), one after the other.
Prints the machine, the start-up cost (median wall and CPU seconds of `python -c pass` in the
jail) and, per worker count, wall time, tasks/s and the pass count. Target: the bwrap jail
within 1.3x of the unshare fallback's 70-problem wall time with 2 workers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from rich.console import Console
from rich.table import Table


def measure(workers: list[int], limit: int | None, starts: int) -> dict:
    """Start-up cost and scoring wall times in this process's isolation mode."""
    from evals.benchmarks import load_benchmark
    from llm_eff.sandbox import run_sandboxed
    from llm_eff.sandbox.isolation import isolation_mode

    walls, cpus = [], []
    for _ in range(starts):
        result = run_sandboxed([sys.executable, "-c", "pass"])
        walls.append(result.wall_s)
        cpus.append(result.cpu_s or 0.0)
    bench = load_benchmark("ncb-python")
    tasks = bench.tasks[:limit] if limit else bench.tasks
    rows = []
    for n in workers:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            outs = list(pool.map(lambda t: bench.score(t, bench.reference_output(t)), tasks))
        rows.append((n, len(tasks), sum(o.passed for o in outs), time.perf_counter() - start))
    return {
        "mode": isolation_mode(),
        "start_wall": statistics.median(walls),
        "start_cpu": statistics.median(cpus),
        "rows": rows,
    }


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["bwrap", "namespaces-root"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.workers, args.limit, args.starts)))
        return
    console = Console(width=120)
    console.print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    table = Table(
        "mode",
        "start-up wall s",
        "start-up CPU s",
        "workers",
        "tasks",
        "passed",
        "wall s",
        "tasks/s",
        "vs first mode",
    )
    first: dict[int, float] = {}
    for mode in args.modes:
        env = {**os.environ, "LLM_EFF_SANDBOX_ISOLATION": mode}
        argv = [sys.executable, __file__, "--child", "--workers", *map(str, args.workers)]
        argv += ["--starts", str(args.starts)] + (
            ["--limit", str(args.limit)] if args.limit else []
        )
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            console.print(f"{mode}: failed\n{done.stderr[-800:]}")
            continue
        res = json.loads(done.stdout.strip().splitlines()[-1])
        for n, total, passed, wall in res["rows"]:
            first.setdefault(n, wall)
            table.add_row(
                res["mode"],
                f"{res['start_wall']:.3f}",
                f"{res['start_cpu']:.3f}",
                str(n),
                str(total),
                str(passed),
                f"{wall:.1f}",
                f"{total / wall:.2f}",
                f"{wall / first[n]:.2f}x",
            )
    console.print(table)


if __name__ == "__main__":
    main()
