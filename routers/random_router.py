"""The random baseline: a uniform score, so threshold t sends about (1 - t) of traffic strong."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RandomRouter:
    """Uniform random score in [0, 1) (seeded for reproducible runs)."""

    name: str = "random"
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def score(self, request: dict[str, Any]) -> float:
        """A fresh uniform draw, whatever the request."""
        return self._rng.random()
