"""A feature rule router: no model, microseconds per request.

Score = a weighted sum of simple complexity signals, capped at 1: length (tokens estimated as
characters / 4, saturating at `long_tokens`), code or SQL markers, reasoning words (why,
explain, prove, derive, compare, ...), maths notation, and the number of questions asked.
Weights are plain values so an operator can tune them in the proxy's YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from routers.base import request_text

_CODE = re.compile(
    r"```|\bdef |\bclass |\bSELECT\b|\bJOIN\b|\bimport |#include|=>|\{\s*$", re.M | re.I
)
_REASONING = re.compile(
    r"\b(why|explain|prove|derive|analy[sz]e|compare|design|optimi[sz]e"
    r"|step[- ]by[- ]step|trade-?offs?)\b",
    re.I,
)
_MATH = re.compile(r"[∑∫√≤≥±]|\\frac|\^\d|\b\d+\s*[*/^]\s*\d+|\bequation|\bintegral|\bmatrix", re.I)


@dataclass
class RuleRouter:
    """Weighted complexity features of the request text (see module docstring)."""

    name: str = "rules"
    long_tokens: int = 1500
    w_length: float = 0.35
    w_code: float = 0.25
    w_reasoning: float = 0.25
    w_math: float = 0.15
    w_questions: float = 0.05

    def features(self, text: str) -> dict[str, float]:
        """The raw signals, each in [0, 1]."""
        return {
            "length": min(len(text) / 4 / self.long_tokens, 1.0),
            "code": 1.0 if _CODE.search(text) else 0.0,
            "reasoning": min(len(_REASONING.findall(text)) / 2, 1.0),
            "math": 1.0 if _MATH.search(text) else 0.0,
            "questions": min(text.count("?") / 3, 1.0),
        }

    def score(self, request: dict[str, Any]) -> float:
        """Weighted sum of `features`, capped at 1."""
        f = self.features(request_text(request))
        total = (
            self.w_length * f["length"]
            + self.w_code * f["code"]
            + self.w_reasoning * f["reasoning"]
            + self.w_math * f["math"]
            + self.w_questions * f["questions"]
        )
        return min(total, 1.0)
