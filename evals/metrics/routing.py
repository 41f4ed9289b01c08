"""Router metrics on per-query outcomes (RouteLLM, RouterBench).

Given, per query, whether the strong and the weak model answered correctly and the router's
score, sweeping the threshold gives the cost-quality curve. With PGR (performance gap
recovered) = (acc - acc_weak) / (acc_strong - acc_weak) at each share of strong calls:

- APGR: area under PGR over the strong-call share in [0, 1] (random routing gives 0.5);
- CPT(x%): the smallest strong-call share whose PGR reaches x%;
- AIQ (RouterBench): area under the non-decreasing upper hull of quality over cost, divided
  by the cost range, so a router that reaches the strong model's quality cheaply scores high.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class OperatingPoint:
    """One threshold's outcome."""

    threshold: float
    strong_share: float
    accuracy: float
    cost: float
    pgr: float


def curve(
    scores: Sequence[float],
    strong_ok: Sequence[bool],
    weak_ok: Sequence[bool],
    strong_cost: Sequence[float],
    weak_cost: Sequence[float],
) -> list[OperatingPoint]:
    """Operating points from all-weak to all-strong, one per distinct score threshold."""
    s = np.asarray(scores, dtype=float)
    so, wo = np.asarray(strong_ok, dtype=float), np.asarray(weak_ok, dtype=float)
    sc, wc = np.asarray(strong_cost, dtype=float), np.asarray(weak_cost, dtype=float)
    n = len(s)
    if n == 0:
        raise ValueError("no queries")
    gap = so.mean() - wo.mean()
    order = np.argsort(-s, kind="stable")  # strongest first: prefixes go to the strong model
    points = [OperatingPoint(float("inf"), 0.0, float(wo.mean()), float(wc.sum() / n), 0.0)]
    acc_gain = np.cumsum(so[order] - wo[order])
    cost_gain = np.cumsum(sc[order] - wc[order])
    ends = [i for i in range(n) if i == n - 1 or s[order[i]] != s[order[i + 1]]]
    for i in ends:
        acc = (wo.sum() + acc_gain[i]) / n
        cost = (wc.sum() + cost_gain[i]) / n
        pgr = (acc - wo.mean()) / gap if gap else 0.0
        points.append(
            OperatingPoint(float(s[order[i]]), (i + 1) / n, float(acc), float(cost), float(pgr))
        )
    return points


def apgr(points: Sequence[OperatingPoint]) -> float:
    """Area under PGR as a function of the strong-call share."""
    x = np.array([p.strong_share for p in points])
    y = np.array([p.pgr for p in points])
    return float(np.trapezoid(y, x))


def cpt(points: Sequence[OperatingPoint], target: float) -> float:
    """Smallest strong-call share reaching PGR >= target (1.0 if none does)."""
    shares = [p.strong_share for p in points if p.pgr >= target - 1e-12]
    return min(shares) if shares else 1.0


def aiq(points: Sequence[OperatingPoint]) -> float:
    """Area under the upper hull of accuracy over cost, normalised by the cost range."""
    pts = sorted({(p.cost, p.accuracy) for p in points})
    lo, hi = pts[0][0], pts[-1][0]
    if hi <= lo:
        return pts[-1][1]
    hull: list[tuple[float, float]] = []
    for c, a in pts:
        if hull and a <= hull[-1][1]:
            continue  # non-decreasing: a dearer point must be better to count
        while len(hull) >= 2:
            (c1, a1), (c2, a2) = hull[-2], hull[-1]
            if (a2 - a1) * (c - c1) <= (a - a1) * (c2 - c1):
                hull.pop()  # c2 lies under the chord from c1 to c: not on the upper hull
            else:
                break
        hull.append((c, a))
    if hull[-1][0] < hi:
        hull.append((hi, hull[-1][1]))
    xs, ys = zip(*hull, strict=True)
    return float(np.trapezoid(ys, xs) / (hi - lo))
