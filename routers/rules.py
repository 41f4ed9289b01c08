"""A feature rule router: no model, microseconds per request.

Score = a weighted sum of simple complexity signals, capped at 1: length (tokens estimated as
characters / 4, saturating at `long_tokens`), code or SQL markers, reasoning words (why,
explain, prove, derive, compare, ...), maths notation, and the number of questions asked. The
markers are searched in the head and tail of a long prompt (`HEAD`, `TAIL` characters).
Weights are plain values so an operator can tune them in the proxy's YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from routers.base import request_text

_CODE_MARKS = ("```", "def ", "class ", "import ", "#include", "=>")  # in lower-cased text
_SQL = re.compile(r"\b(?:select|join)\b")
_BRACE_AT_EOL = re.compile(r"\{[ \t]*$", re.M)
_REASONING = re.compile(
    r"\b(?:why|explain|prove|derive|analy[sz]e|compare|design|optimi[sz]e"
    r"|step[- ]by[- ]step|trade-?offs?)\b"
)
HEAD, TAIL = 2000, 1000  # characters searched for markers in a long prompt
_MATH_SYMBOLS = "∑∫√≤≥±"
_MATH_WORDS = ("equation", "integral", "matrix")  # in lower-cased text
_MATH = re.compile(r"\\frac|\^\d|\d[ \t]*[*/^][ \t]*\d")


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
        """The raw signals, each in [0, 1]; markers are looked for in the first 2,000 and
        last 1,000 characters, so a decision stays well under a millisecond at any length."""
        window = text if len(text) <= HEAD + TAIL else f"{text[:HEAD]}\n{text[-TAIL:]}"
        low = window.lower()
        code = any(m in low for m in _CODE_MARKS) or _SQL.search(low) or _BRACE_AT_EOL.search(low)
        math = (
            any(c in window for c in _MATH_SYMBOLS)
            or any(w in low for w in _MATH_WORDS)
            or _MATH.search(low)
        )
        return {
            "length": min(len(text) / 4 / self.long_tokens, 1.0),
            "code": 1.0 if code else 0.0,
            "reasoning": min(len(_REASONING.findall(low)) / 2, 1.0),
            "math": 1.0 if math else 0.0,
            "questions": min(window.count("?") / 3, 1.0),
        }

    def score(self, request: dict[str, Any] | str) -> float:
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
