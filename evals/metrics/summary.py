"""Per-system summaries of a run: accuracy, pass@k, cost-of-pass, tokens, $, latency, memory."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from evals.metrics.cost_of_pass import cost_of_pass_ci
from evals.metrics.passk import accuracy, mean_pass_at_k
from llm_eff.core.types import Attempt


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100], numpy's default method); NaN for none."""
    import numpy as np

    return float(np.percentile(values, q)) if len(values) else math.nan


@dataclass
class SystemSummary:
    """Everything a report shows about one system on one benchmark."""

    system: str
    system_hash: str
    benchmark: str
    tasks: int
    attempts: int
    accuracy: float
    pass_at_k: dict[int, float | None]
    cost_of_pass: float
    cost_of_pass_low: float
    cost_of_pass_high: float
    dollars_per_attempt: float
    dollars_total: float
    tokens_per_attempt: float
    prompt_tokens_per_attempt: float
    completion_tokens_per_attempt: float
    latency_p50_s: float
    latency_p95_s: float
    throughput_tokens_per_s: float
    peak_memory_bytes: int | None
    errors: int
    price_sources: list[str] = field(default_factory=list)
    by_category: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    program_runtime_s: float | None = None  # median runtime of passing programs, where timed
    layers_per_attempt: float | None = None  # mean layers executed, for dynamic-depth models
    ttft_p50_s: float | None = None  # per answer: time to its first token, median
    tpot_p50_s: float | None = None  # per answer: time per output token after it, median
    # EfficientLLM's axes (llm_eff.backends.efficiency); None where no backend measured them
    quant: str | None = None  # the weight schemes its answers ran in
    compression_rate: float | None = None  # median over answers
    memory_utilization: float | None = None  # the highest: peak memory over capacity
    compute_utilization: float | None = None  # median over answers
    energy_j_per_attempt: float | None = None  # mean over the answers whose energy was read

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def group_attempts(attempts: Iterable[Attempt]) -> dict[tuple[str, str], list[Attempt]]:
    """Attempts grouped by (benchmark, system hash), in first-seen order."""
    groups: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        groups[(attempt.benchmark, attempt.system_hash)].append(attempt)
    return dict(groups)


def summarize_system(attempts: list[Attempt], ks: Sequence[int] = (1, 5, 10)) -> SystemSummary:
    """Summary of one system's attempts on one benchmark (all share benchmark and hash)."""
    if not attempts:
        raise ValueError("no attempts to summarise")
    by_task: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        by_task[a.task_id].append(a)
    ci = cost_of_pass_ci(
        [[(a.cost.dollars, a.passed) for a in group] for group in by_task.values()]
    )
    n = len(attempts)
    latencies = [a.usage.latency_s for a in attempts]
    total_time = sum(latencies)
    total_tokens = sum(a.usage.total_tokens for a in attempts)
    ttfts = [a.usage.ttft_s for a in attempts if a.usage.ttft_s is not None]
    tpots = [a.usage.tpot_s for a in attempts if a.usage.tpot_s is not None]
    # throughput: the batches' own rate where backends measured it (a batch's wall time is
    # every answer's latency, so tokens over summed latencies would undercount it)
    rates = [a.usage.batch_tokens_per_s for a in attempts if a.usage.batch_tokens_per_s]
    if rates:
        throughput = percentile(rates, 50)
    else:
        throughput = total_tokens / total_time if total_time > 0 else 0.0
    peaks = [a.usage.peak_memory_bytes for a in attempts if a.usage.peak_memory_bytes]
    categories: dict[str, list[bool]] = defaultdict(list)
    reasons: dict[str, int] = defaultdict(int)
    runtimes = [
        float(a.details["runtime_s"])
        for a in attempts
        if a.passed and a.details.get("runtime_s") is not None
    ]
    layers = [a.usage.layers_executed for a in attempts if a.usage.layers_executed is not None]
    axes = _efficiency(attempts)
    for a in attempts:
        categories[str(a.details.get("category") or "all")].append(a.passed)
        reasons[str(a.details.get("reason") or ("passed" if a.passed else "failed"))] += 1
    return SystemSummary(
        system=attempts[0].system,
        system_hash=attempts[0].system_hash,
        benchmark=attempts[0].benchmark,
        tasks=len(by_task),
        attempts=n,
        accuracy=accuracy(a.passed for a in attempts),
        pass_at_k={
            k: mean_pass_at_k(((len(g), sum(a.passed for a in g)) for g in by_task.values()), k)
            for k in ks
        },
        cost_of_pass=ci.value,
        cost_of_pass_low=ci.low,
        cost_of_pass_high=ci.high,
        dollars_per_attempt=sum(a.cost.dollars for a in attempts) / n,
        dollars_total=sum(a.cost.dollars for a in attempts),
        tokens_per_attempt=total_tokens / n,
        prompt_tokens_per_attempt=sum(a.usage.prompt_tokens for a in attempts) / n,
        completion_tokens_per_attempt=sum(a.usage.completion_tokens for a in attempts) / n,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        throughput_tokens_per_s=throughput,
        peak_memory_bytes=max(peaks) if peaks else None,
        errors=sum(1 for a in attempts if a.error),
        price_sources=sorted({a.cost.source for a in attempts}),
        by_category={c: accuracy(v) for c, v in sorted(categories.items())},
        reasons=dict(sorted(reasons.items())),
        program_runtime_s=percentile(runtimes, 50) if runtimes else None,
        layers_per_attempt=sum(layers) / len(layers) if layers else None,
        ttft_p50_s=percentile(ttfts, 50) if ttfts else None,
        tpot_p50_s=percentile(tpots, 50) if tpots else None,
        **axes,
    )


def _efficiency(attempts: list[Attempt]) -> dict[str, float | str | None]:
    """The summary's EfficientLLM fields from its attempts' usage."""

    def values(name: str) -> list[float]:
        return [v for a in attempts if (v := getattr(a.usage, name)) is not None]

    compression, memory = values("compression_rate"), values("memory_utilization")
    compute, energy = values("compute_utilization"), values("energy_j")
    schemes = sorted({a.usage.quant for a in attempts if a.usage.quant})
    return {
        "quant": ", ".join(schemes) or None,
        "compression_rate": percentile(compression, 50) if compression else None,
        "memory_utilization": max(memory) if memory else None,
        "compute_utilization": percentile(compute, 50) if compute else None,
        "energy_j_per_attempt": sum(energy) / len(energy) if energy else None,
    }


def summarize(attempts: Iterable[Attempt], ks: Sequence[int] = (1, 5, 10)) -> list[SystemSummary]:
    """One summary per (benchmark, system) in the attempts."""
    return [summarize_system(group, ks) for group in group_attempts(attempts).values()]
