"""The shared data model: `Usage`, `Cost`, `Attempt`, `Task` (see DESIGN.md).

Plain dataclasses with `to_dict`/`from_dict` so that run logs are JSON lines that any later report
can rebuild from. No heavy imports here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Usage:
    """What one attempt consumed: tokens, time and, for local models, compute and memory."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    latency_s: float = 0.0
    model: str = ""
    flops_estimate: float | None = None
    peak_memory_bytes: int | None = None
    layers_executed: float | None = None
    ttft_s: float | None = None  # time to first token of this answer (from its request)
    tpot_s: float | None = None  # time per output token after the first, of this answer
    batch_tokens_per_s: float | None = None  # tokens processed per second by its batch
    # EfficientLLM's axes (llm_eff.backends.efficiency), measured by local backends
    quant: str | None = None  # weight scheme: fp32, bf16, int8, int4, nf4, gguf-Q4_1, ...
    compression_rate: float | None = None  # the model's 16-bit size over its stored size
    memory_utilization: float | None = None  # peak memory over the device's capacity
    compute_utilization: float | None = None  # batch FLOP/s over the device's measured peak
    energy_j: float | None = None  # this answer's share of the device's energy; None unread

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            latency_s=self.latency_s + other.latency_s,
            model=self.model or other.model,
            flops_estimate=_opt_sum(self.flops_estimate, other.flops_estimate),
            peak_memory_bytes=_opt_max(self.peak_memory_bytes, other.peak_memory_bytes),
            layers_executed=_opt_sum(self.layers_executed, other.layers_executed),
            # per-answer timings: the first call's (e.g. a cascade's first answer)
            ttft_s=_first(self.ttft_s, other.ttft_s),
            tpot_s=_first(self.tpot_s, other.tpot_s),
            batch_tokens_per_s=_first(self.batch_tokens_per_s, other.batch_tokens_per_s),
            quant=self.quant or other.quant,
            compression_rate=_first(self.compression_rate, other.compression_rate),
            memory_utilization=_opt_max(self.memory_utilization, other.memory_utilization),
            compute_utilization=_first(self.compute_utilization, other.compute_utilization),
            energy_j=_opt_sum(self.energy_j, other.energy_j),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        """Inverse of `to_dict`; unknown keys are ignored."""
        return _from_dict(cls, data)


def _opt_sum(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def _opt_max(a: Any, b: Any) -> Any:
    return None if a is None and b is None else max(x for x in (a, b) if x is not None)


@dataclass
class Cost:
    """Dollars for one attempt, and which price source produced them."""

    dollars: float = 0.0
    source: str = "none"

    def __add__(self, other: Cost) -> Cost:
        sources = sorted({s for s in (self.source, other.source) if s != "none"})
        return Cost(self.dollars + other.dollars, "+".join(sources) or "none")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cost:
        """Inverse of `to_dict`."""
        return _from_dict(cls, data)


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of a system's configuration (sorted JSON, sha256, 12 hex chars)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


@dataclass
class Attempt:
    """One system's answer to one task: output, whether it passed, what it cost."""

    task_id: str
    system: str
    system_hash: str
    sample: int = 0
    output: str = ""
    passed: bool = False
    score: float = 0.0
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    benchmark: str = ""

    @property
    def key(self) -> tuple[str, str, str, int]:
        """Identity of an attempt in a run log: (benchmark, task, system hash, sample)."""
        return (self.benchmark, self.task_id, self.system_hash, self.sample)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["usage"] = self.usage.to_dict()
        data["cost"] = self.cost.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        """Inverse of `to_dict`."""
        attempt = _from_dict(cls, data)
        attempt.usage = Usage.from_dict(data.get("usage") or {})
        attempt.cost = Cost.from_dict(data.get("cost") or {})
        return attempt


@dataclass
class Task:
    """A benchmark item: prompt, how to check an answer, and metadata such as category."""

    id: str
    prompt: str
    language: str = "python"
    tests: str = ""
    entry_point: str = ""
    reference: str = ""
    setup_code: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
