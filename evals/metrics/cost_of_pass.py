"""Cost-of-pass (Erol et al., 2025) with a bootstrap interval, and the frontier across systems.

v(m, p) = C_m(p) / R_m(p): the expected cost of one attempt divided by the probability that an
attempt succeeds; infinite when no attempt succeeds. The interval resamples tasks (with all of a
task's attempts) so that it reflects which problems were drawn.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def cost_of_pass(costs: Sequence[float], passed: Sequence[bool | float]) -> float:
    """Mean cost per attempt divided by success rate; math.inf when nothing passed."""
    if len(costs) != len(passed):
        raise ValueError("costs and passed must have the same length")
    if not costs:
        return math.inf
    rate = sum(float(p) for p in passed) / len(passed)
    mean_cost = sum(costs) / len(costs)
    return mean_cost / rate if rate > 0 else math.inf


@dataclass
class CostOfPass:
    """A cost-of-pass estimate with its bootstrap confidence interval."""

    value: float
    low: float
    high: float
    confidence: float


def cost_of_pass_ci(
    per_task: Sequence[Sequence[tuple[float, bool | float]]],
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> CostOfPass:
    """Cost-of-pass over tasks (each a list of (cost, passed) attempts) with a percentile CI."""
    flat = [a for task in per_task for a in task]
    value = cost_of_pass([c for c, _ in flat], [p for _, p in flat])
    if len(per_task) < 2:
        return CostOfPass(value, value, value, confidence)
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        draw = [a for _ in per_task for a in per_task[rng.randrange(len(per_task))]]
        stats.append(cost_of_pass([c for c, _ in draw], [p for _, p in draw]))
    stats.sort()
    alpha = (1 - confidence) / 2
    low = stats[int(alpha * (len(stats) - 1))]
    high = stats[int(math.ceil((1 - alpha) * (len(stats) - 1)))]
    return CostOfPass(value, low, high, confidence)


def frontier_cost_of_pass(
    values: Mapping[str, float], human_expert_cost: float | None = None
) -> tuple[str, float]:
    """The cheapest cost-of-pass among systems (and a human expert, if priced): (name, value)."""
    candidates = dict(values)
    if human_expert_cost is not None:
        candidates["human expert"] = human_expert_cost
    if not candidates:
        raise ValueError("no systems to compare")
    name = min(candidates, key=lambda n: candidates[n])
    return name, candidates[name]
