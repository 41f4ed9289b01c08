"""TEP, token elasticity of performance (EllieSQL): relative accuracy change per relative token
change of a system G against a baseline B.

TEP = (dP / P_B) / (dT / T_B), dP = P_G - P_B, dT = T_G - T_B. A system that uses fewer tokens
and is at least as accurate (dT < 0, dP >= 0) *dominates* the baseline: its TEP would be
negative (or zero) although it is strictly better, so the verdict is reported beside the number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class TEP:
    """TEP with the raw differences and a verdict: dominates, dominated, trade-off, equal."""

    value: float | None
    d_perf: float
    d_tokens: float
    verdict: str

    def describe(self) -> str:
        """One human-readable line, e.g. 'dominates (dP=+0.050, dT=-120.0)'."""
        shown = "n/a" if self.value is None else f"{self.value:+.3f}"
        return f"{self.verdict}: TEP {shown} (dP={self.d_perf:+.3f}, dT={self.d_tokens:+.1f})"


def tep(p_g: float, t_g: float, p_b: float, t_b: float) -> TEP:
    """TEP of system G (accuracy p_g, mean tokens t_g) against baseline B (p_b, t_b)."""
    d_perf, d_tokens = p_g - p_b, t_g - t_b
    if d_tokens == 0:
        verdict = "equal" if d_perf == 0 else ("dominates" if d_perf > 0 else "dominated")
        value = None if d_perf == 0 else math.copysign(math.inf, d_perf)
        return TEP(value, d_perf, d_tokens, verdict)
    value = None if p_b == 0 or t_b == 0 else (d_perf / p_b) / (d_tokens / t_b)
    if d_tokens < 0 and d_perf >= 0:
        verdict = "dominates"
    elif d_tokens > 0 and d_perf <= 0:
        verdict = "dominated"
    else:
        verdict = "trade-off"
    return TEP(value, d_perf, d_tokens, verdict)


def mean_tokens(usages: Iterable[tuple[int, int]], completion_weight: float = 1.0) -> float:
    """Mean tokens per query from (prompt, completion) pairs, completion tokens weighted."""
    values = [p + completion_weight * c for p, c in usages]
    return sum(values) / len(values) if values else 0.0
