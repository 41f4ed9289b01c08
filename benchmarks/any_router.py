"""One router over every technique, on the ladder's code tasks: does picking, per task, among
all the systems (SmolLM2, Qwen-0.5B, Qwen-1.5B, the cascade) beat the best single one?

    .venv/bin/python benchmarks/ladder_routing.py       # once: the run logs (about 75 min)
    .venv/bin/python benchmarks/any_router.py [--runs runs/ladder] [--seeds 20] [--folds 4]

Reads the run logs that `ladder_routing.py` wrote (every system on the same 48 tasks), then
cross-validates by task: the tasks are dealt into `--folds` folds, `--seeds` times; for each
fold an any-technique router (`routers/any_router.py`) is trained on the other folds' tasks,
with the dollars and outcomes each system really had there, and picks a system for each task
of this fold; the routed pass and dollars are that system's recorded ones (greedy decoding, so
a rerun answers the same). Numbers are over all 48 tasks per seed, mean +- std over seeds.
Routers: no accuracy floor (lowest cost per pass), and floors of 0.9 and 0.97 x the best single
system's training pass rate; the oracle (the cheapest system that passed) is the ceiling.
The claim tested: <= 0.6x the most accurate single system's cost-of-pass at >= 97% of its
pass rate.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np
from ladder_routing import CASCADES, MODELS, _money

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COST_SHARE, PASS_SHARE = 0.60, 0.97


def _folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::folds] for i in range(folds)]


def main() -> None:
    """Cross-validate the any-technique router and print the table and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ladder")
    parser.add_argument("--benches", default="efficiency,ncb-python")
    parser.add_argument("--cascades", default=CASCADES)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    from evals.benchmarks import load_benchmark
    from evals.metrics.cost_of_pass import cost_of_pass
    from evals.systems import parse_system
    from llm_eff.core.runlog import RunLog
    from routers.any_router import AnyRouter
    from routers.embedding import embed
    from routers.outcomes import outcomes_from_attempts

    benches = args.benches.split(",")
    specs = [*MODELS, *filter(None, args.cascades.split(","))]
    names = [parse_system(s).name for s in specs]
    attempts, prompts = [], {}
    for bench in benches:
        benchmark = load_benchmark(bench)
        prompts.update({(benchmark.name, t.id): t.prompt for t in benchmark.tasks})
        log = args.runs / f"{bench}.jsonl"
        if not log.is_file():
            raise SystemExit(f"{log} not found: run benchmarks/ladder_routing.py first")
        attempts += RunLog(log).read()
    outcomes = outcomes_from_attempts(attempts, prompts, names)
    n = len(outcomes.prompts)
    passed = np.array([outcomes.correct[m] for m in names], float).T  # (tasks, systems)
    cost = np.array([outcomes.costs[m] for m in names], float).T
    vectors = embed(outcomes.prompts)
    rates, per_pass = (
        passed.mean(axis=0),
        [cost_of_pass(cost[:, j].tolist(), passed[:, j].tolist()) for j in range(len(names))],
    )
    top = int(np.argmax(rates))  # the most accurate single system (first of ties)
    print(
        f"machine: {platform.node()}, {len(os.sched_getaffinity(0))} cores, no GPU; {n} tasks "
        f"({', '.join(benches)}), {len(names)} systems, {args.folds}-fold cross-validation by "
        f"task x {args.seeds} seeds; dollars as recorded in the run logs\n"
    )
    print("| system | pass rate | $ / task | cost-of-pass |")
    print("|---|---|---|---|")
    for j, spec in enumerate(specs):
        print(f"| {spec} | {rates[j]:.1%} | {_money(cost[:, j].mean())} | {_money(per_pass[j])} |")
    every = list(range(len(names)))
    strongest_model = len(MODELS) - 1
    variants = {
        "any-router, no floor": (None, every),
        "any-router, floor 0.9": (0.9, every),
        "any-router, floor 0.97": (0.97, every),
    }
    for weak in range(strongest_model):  # the same router with two targets, as RouteLLM's
        pair = f"{specs[weak]} + {specs[strongest_model]}"
        variants[f"two targets ({pair}), floor 0.97"] = (0.97, [weak, strongest_model])
    results: dict[str, list[tuple[float, float, np.ndarray]]] = {v: [] for v in variants}
    for seed in range(args.seeds):
        for label, (floor, chosen) in variants.items():
            picks = np.zeros(n, int)
            for test in _folds(n, args.folds, seed):
                train = np.setdiff1d(np.arange(n), test)
                router = AnyRouter(k=args.k, accuracy_floor=floor).fit_vectors(
                    vectors[train],
                    {names[j]: passed[train, j].tolist() for j in chosen},
                    {names[j]: cost[train, j].tolist() for j in chosen},
                )
                picks[test] = [chosen[c.index] for c in router.choose_vectors(vectors[test])]
            got = passed[np.arange(n), picks]
            spent = cost[np.arange(n), picks]
            results[label].append(
                (
                    got.mean(),
                    cost_of_pass(spent.tolist(), got.tolist()),
                    np.bincount(picks, minlength=len(names)),
                )
            )
    passing = np.where(passed > 0, cost, np.inf)
    oracle = np.where(passed.any(axis=1), passing.argmin(axis=1), cost.argmin(axis=1))
    o_got, o_cost = passed[np.arange(n), oracle], cost[np.arange(n), oracle]
    print(
        f"\nvs {specs[top]} (the most accurate single system: {rates[top]:.1%}, "
        f"cost-of-pass {_money(per_pass[top])})\n"
    )
    print(
        "| router | pass rate | share of its pass rate | cost-of-pass | vs its cost-of-pass "
        "| tasks sent per system |"
    )
    print("|---|---|---|---|---|---|")
    verdicts = []
    for label, runs in results.items():
        rate = np.array([r[0] for r in runs])
        cop = np.array([r[1] for r in runs])
        sent = np.mean([r[2] for r in runs], axis=0)
        share, ratio = rate.mean() / rates[top], cop.mean() / per_pass[top]
        print(
            f"| {label} | {rate.mean():.1%} +- {rate.std():.1%} | {share:.0%} | "
            f"{_money(cop.mean())} +- {cop.std():.6f} | {ratio:.0%} | "
            f"{' / '.join(f'{s:.1f}' for s in sent)} |"
        )
        meets = ratio <= COST_SHARE and share >= PASS_SHARE
        verdicts.append(
            f"{label}: {share:.0%} of the pass rate at {ratio:.0%} of the cost-of-pass: "
            f"{'meets' if meets else 'does not meet'} the claim"
        )
    o_cop = cost_of_pass(o_cost.tolist(), o_got.tolist())
    print(
        f"| oracle (cheapest system that passed) | {o_got.mean():.1%} | "
        f"{o_got.mean() / rates[top]:.0%} | "
        f"{_money(o_cop)} | {o_cop / per_pass[top]:.0%} | "
        f"{' / '.join(str(c) for c in np.bincount(oracle, minlength=len(names)))} |"
    )
    print(f"\n(tasks sent per system, in order: {', '.join(specs)})")
    print(
        f"\nclaim: <= {COST_SHARE:.0%} of the cost-of-pass at >= {PASS_SHARE:.0%} of the pass rate"
    )
    for line in verdicts:
        print(f"- {line}")


if __name__ == "__main__":
    main()
