"""Accuracy and the unbiased pass@k estimator of Chen et al. (2021)."""

from __future__ import annotations

from collections.abc import Iterable
from math import comb


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """1 - C(n-c, k) / C(n, k) for one task with n samples of which c passed; None if k > n."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float | None:
    """pass@k averaged over tasks given (n, c) per task; tasks with fewer than k samples are
    left out, and None is returned when no task has k samples."""
    values = [v for n, c in counts if (v := pass_at_k(n, c, k)) is not None]
    return sum(values) / len(values) if values else None


def accuracy(passed: Iterable[bool | float]) -> float:
    """Mean of `passed` (booleans or scores in [0, 1]); 0.0 for no attempts."""
    values = [float(p) for p in passed]
    return sum(values) / len(values) if values else 0.0
