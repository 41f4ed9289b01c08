"""Routing and cascades on code, on the local ladder: is a cheap model plus a router or a
cascade as good as the strongest model for less? (RouteLLM, FrugalGPT)

    LADDER=1 bash scripts/install.sh        # once: the two Qwen2.5-Coder GGUF models
    .venv/bin/python benchmarks/ladder_routing.py [--runs runs/ladder] [--seeds 20]
        [--benches efficiency,ncb-python] [--limit 24] [--cascades C1,C2] [--skip-eval]

Step 1 runs `llm-eff eval` for every model and cascade on the first `--limit` tasks of every
benchmark (greedy, 512 tokens, the default engine; each run log resumes, so a rerun only adds
what is missing). Step 2 reads
the logs and prints, per system, pass@1, $ per task and cost-of-pass (tasks of all benchmarks
together). Step 3 trains routers between each cheaper model and the strongest one on a random
half of the tasks and scores the other half, `--seeds` times (`routers.bench.run_bench` with
the dollars each model really spent on each task), and prints APGR, CPT(50%) and the cheapest
operating point that keeps at least 95% of the strongest model's pass rate, with its
cost-of-pass. The claim tested: the best router or cascade reaches >= 95% of the strongest
model's pass rate at <= 60% of its cost-of-pass.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if TYPE_CHECKING:
    from routers.outcomes import Outcomes
MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
CASCADES = "cascade:smollm2-135m>qwen2.5-coder-1.5b"  # comma-separated
TARGET_SHARE, COST_SHARE = 0.95, 0.60


def _evaluate(benches: list[str], systems: list[str], runs: Path, limit: int) -> None:
    runs.mkdir(parents=True, exist_ok=True)
    for bench in benches:
        command = [str(ROOT / ".venv/bin/llm-eff"), "eval", "--bench", bench, "--limit", str(limit)]
        for system in systems:
            command += ["--system", system]
        command += ["--run", str(runs / f"{bench}.jsonl")]
        print(f"[ladder_routing] {' '.join(command[1:])}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True)


def _money(x: float | None) -> str:
    return "-" if x is None else ("inf" if math.isinf(x) else f"${x:.6f}")


def main() -> None:
    """Evaluate (resumable), then print the per-system and per-router tables and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ladder")
    parser.add_argument("--benches", default="efficiency,ncb-python")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--limit", type=int, default=24, help="tasks per benchmark")
    parser.add_argument("--cascades", default=CASCADES)
    parser.add_argument("--skip-eval", action="store_true")
    args = parser.parse_args()
    from evals.benchmarks import load_benchmark
    from evals.metrics.cost_of_pass import cost_of_pass
    from evals.systems import parse_system
    from llm_eff.core.runlog import RunLog
    from routers.outcomes import outcomes_from_attempts

    benches = args.benches.split(",")
    specs = [*MODELS, *filter(None, args.cascades.split(","))]
    if not args.skip_eval:
        _evaluate(benches, specs, args.runs, args.limit)
    names = [parse_system(spec).name for spec in specs]  # as the run logs name them
    attempts, prompts = [], {}
    for bench in benches:
        benchmark = load_benchmark(bench)
        prompts.update({(benchmark.name, t.id): t.prompt for t in benchmark.tasks})
        attempts += RunLog(args.runs / f"{bench}.jsonl").read()
    outcomes = outcomes_from_attempts(attempts, prompts, names)
    label = dict(zip(names, specs, strict=True))
    print(
        f"\nmachine: {platform.node()}, {len(os.sched_getaffinity(0))} cores, no GPU; "
        f"{len(outcomes.prompts)} tasks ({', '.join(benches)}), greedy, 512 tokens, "
        "local tokens priced at $0.10/hour of hardware\n"
    )
    print("| system | pass@1 | $ / task | cost-of-pass |")
    print("|---|---|---|---|")
    cop = {}
    for name in names:
        ok, cost = outcomes.correct[name], outcomes.costs[name]
        cop[name] = cost_of_pass(cost, ok)
        print(
            f"| {label[name]} | {sum(ok)}/{len(ok)} ({sum(ok) / len(ok):.1%}) | "
            f"{_money(sum(cost) / len(cost))} | {_money(cop[name])} |"
        )
    strong = names[len(MODELS) - 1]
    verdicts = [_cascade_verdict(outcomes, label[n], n, strong, cop) for n in names[len(MODELS) :]]
    for weak in names[: len(MODELS) - 1]:
        verdicts += _routers(outcomes, weak, strong, label, cop[strong], args.seeds)
    print(
        f"\nclaim: >= {TARGET_SHARE:.0%} of {label[strong]}'s pass rate at <= {COST_SHARE:.0%} "
        "of its cost-of-pass"
    )
    for line in verdicts:
        print(f"- {line}")


def _cascade_verdict(outcomes: Outcomes, shown: str, name: str, strong: str, cop: dict) -> str:
    rate, strong_rate = outcomes.accuracy(name), outcomes.accuracy(strong)
    share = rate / strong_rate if strong_rate else 0.0
    ratio = cop[name] / cop[strong]
    meets = share >= TARGET_SHARE and ratio <= COST_SHARE
    return (
        f"{shown}: {share:.0%} of the pass rate at {ratio:.0%} of the cost-of-pass: "
        f"{'meets' if meets else 'does not meet'} the claim"
    )


def _routers(
    outcomes: Outcomes, weak: str, strong: str, label: dict, strong_cop: float, seeds: int
) -> list[str]:
    """Print one router table for weak -> strong; the verdict line of each learned router."""
    from llm_eff.core.prices import Price
    from routers.bench import run_bench

    unused = Price(0.0, 0.0, "measured")  # every query's cost is measured in the run logs
    results, facts = run_bench(
        outcomes,
        strong,
        weak,
        unused,
        unused,
        seeds=seeds,
        split="questions",
        k=10,
        target_share=TARGET_SHARE,
    )
    print(
        f"\nrouters {label[weak]} -> {label[strong]}: {seeds} random splits, each scored on "
        f"{facts['test_prompts']} held-out tasks; pass rates there {facts['strong_accuracy']:.1%} "
        f"(strong) and {facts['weak_accuracy']:.1%} (weak) on the first split\n"
    )
    print(
        "| router | APGR | CPT(50%) | cost-of-pass at >= 95% of the strong pass rate | vs strong |"
    )
    print("|---|---|---|---|---|")
    lines = []
    for r in results:
        at = r.cost_of_pass_at_strong_accuracy
        ratio = (
            at / strong_cop if at is not None and strong_cop and math.isfinite(strong_cop) else None
        )
        shown = "-" if ratio is None else f"{ratio:.0%}"
        print(
            f"| {r.name} | {r.apgr:.3f} +- {r.apgr_std:.3f} | {r.cpt50:.1%} | "
            f"{_money(at)} | {shown} |"
        )
        if ratio is not None and r.name not in ("oracle", "random"):
            lines.append(
                f"router {r.name}, {label[weak]} -> {label[strong]}: {ratio:.0%} of the "
                f"cost-of-pass at >= 95% of the pass rate: "
                f"{'meets' if ratio <= COST_SHARE else 'does not meet'} the claim"
            )
    return lines


if __name__ == "__main__":
    main()
