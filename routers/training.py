"""Router training data from eval run logs, and threshold calibration.

Labels (two targets), one of two kinds:

- `cheapest`: the cheapest target that passed. A task the weak system passed is labelled 0
  (weak is enough), one that only the strong system passed is labelled 1; tasks neither passed
  are left out.
- `gain`: (strong passed - weak passed + 1) / 2, so 1 when only the strong target passed, 0
  when only the weak one did, 0.5 for a tie (both or neither). A router fitted to it estimates
  the accuracy the strong target adds, and sending prompts up in that order is what maximises
  accuracy at every share of strong calls; on RouteLLM's MMLU outcomes it ranks held-out
  subjects clearly better than the cheapest-passing label (see the README). Calibration picks the
threshold at which a router sends a requested share of calls to the strong target (RouteLLM's
`calibrate_threshold`), from the router's scores on representative prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from llm_eff.core.errors import UserError
from llm_eff.core.types import Attempt

LABELS = ("cheapest", "gain")


def check_label_kind(kind: str) -> None:
    """UserError unless `kind` is one of `LABELS`."""
    if kind not in LABELS:
        raise UserError(f"unknown label kind '{kind}' (use {' or '.join(LABELS)})")


def label_value(kind: str, strong_ok: bool, weak_ok: bool) -> float | None:
    """One task's label of `kind` (module docstring); None where the kind leaves it out."""
    if kind == "gain":
        return gain_label(strong_ok, weak_ok)
    return float(not weak_ok) if strong_ok or weak_ok else None


def routing_labels(
    attempts: Sequence[Attempt], strong: str, weak: str, kind: str = "cheapest"
) -> dict[str, float]:
    """task id -> label of `kind` (see module docstring); systems matched by name."""
    check_label_kind(kind)
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
    both = {t: p for t, p in passed.items() if len(p) == 2}
    if not any(p[strong] or p[weak] for p in both.values()):
        raise UserError("no task was passed by either target: nothing to learn a route from")
    labels = {t: label_value(kind, p[strong], p[weak]) for t, p in both.items()}
    return {t: y for t, y in labels.items() if y is not None}


def gain_label(strong_ok: bool, weak_ok: bool) -> float:
    """(strong_ok - weak_ok + 1) / 2: 1 strong only, 0 weak only, 0.5 a tie."""
    return (float(strong_ok) - float(weak_ok) + 1.0) / 2.0


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
