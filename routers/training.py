"""Router training data from eval run logs, and threshold calibration.

Labels (two targets): for each task, the cheapest target that passed. A task the weak system
passed is labelled 0 (weak is enough), one that only the strong system passed is labelled 1;
tasks neither passed teach nothing about routing and are left out. Calibration picks the
threshold at which a router sends a requested share of calls to the strong target (RouteLLM's
`calibrate_threshold`), from the router's scores on representative prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from llm_eff.core.errors import UserError
from llm_eff.core.types import Attempt


def routing_labels(attempts: Sequence[Attempt], strong: str, weak: str) -> dict[str, int]:
    """task id -> 1 if only `strong` passed, 0 if `weak` passed; systems matched by name."""
    passed: dict[str, dict[str, bool]] = defaultdict(dict)
    names = {a.system for a in attempts}
    for system in (strong, weak):
        if system not in names:
            raise UserError(
                f"no system named '{system}' in the run log (have: {', '.join(sorted(names))})"
            )
    for a in attempts:
        if a.system in (strong, weak):
            passed[a.task_id][a.system] = passed[a.task_id].get(a.system, False) or a.passed
    labels = {}
    for task, by_system in passed.items():
        if len(by_system) < 2:
            continue
        if by_system[weak]:
            labels[task] = 0
        elif by_system[strong]:
            labels[task] = 1
    if not labels:
        raise UserError("no task was passed by either target: nothing to learn a route from")
    return labels


def calibrate_threshold(scores: Sequence[float], strong_share: float) -> float:
    """The threshold t such that about `strong_share` of the scores are >= t."""
    if not 0.0 <= strong_share <= 1.0:
        raise UserError("strong share must be between 0 and 1")
    values = np.sort(np.asarray(scores, dtype=float))
    if len(values) == 0:
        raise UserError("no prompts to calibrate on")
    if strong_share == 0.0:
        return float(values[-1]) + 1e-9
    index = int(round((1.0 - strong_share) * len(values)))
    return float(values[min(index, len(values) - 1)])
