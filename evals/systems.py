"""Systems: what is evaluated. A system is a model plus decoding settings plus a strategy.

Spec strings (the CLI's `--system`):

    reference                          the benchmark's reference solutions (no model)
    smollm2-135m                       greedy, one sample per task
    smollm2-135m:best-of-4             4 samples at temperature 0.8; the attempt passes if any
                                       candidate passes the tests (test feedback), and costs all 4
    MODEL:samples=5,temperature=0.8    5 independent attempts per task (for pass@k)
    MODEL:max_tokens=256,name=short    any of: samples, best_of, temperature, top_p,
                                       max_tokens, name, api_base, pipeline
    MODEL:quant=int4                   a local model with its weights quantized (fp32, bf16,
                                       fp16, int8, int4, nf4; llm_eff.models.quant); the
                                       scheme becomes part of the model's name
    MODEL:pipeline=advanced            the benchmark's multi-call pipeline (Spider: basic,
                                       intermediate, advanced, cascade)
    KIND:BODY[:options]                a registered system kind (`llm-eff eval --help` lists
                                       them): cascades and routed systems (routers), agent
                                       configurations (agents), Spider's pipeline aliases

A system kind is registered by the package that owns it, under the entry-point group
`llm_eff.system_kinds` (see pyproject.toml); this module knows none of them. A kind parses its
own options and says what running it takes: the models it calls, the systems that must run
first (`steps`), how to answer a batch of tasks (`solver`), or how to write its attempts from
recorded ones (`replay`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from llm_eff.backends.base import user_chat
from llm_eff.core.errors import UserError
from llm_eff.core.types import config_hash

if TYPE_CHECKING:
    from evals.benchmarks.base import Benchmark
    from llm_eff.backends.base import Backend, Completion, GenerationConfig
    from llm_eff.core.types import Attempt, Task

_NUMERIC = {"samples": int, "best_of": int, "temperature": float, "top_p": float, "max_tokens": int}
BEST_OF_TEMPERATURE = 0.8
ENTRY_POINT_GROUP = "llm_eff.system_kinds"


@dataclass(frozen=True)
class SystemSpec:
    """A parsed system: model string, decoding settings and strategy."""

    model: str
    samples: int = 1
    best_of: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    label: str = ""
    api_base: str | None = None
    pipeline: str = ""  # a benchmark's multi-call pipeline (e.g. Spider's basic/intermediate)
    extra: dict[str, Any] = field(default_factory=dict)  # a system kind's own options
    kind: str = field(default="", compare=False)  # the system kind's name, '' for a model

    @property
    def is_reference(self) -> bool:
        """True for the reference-solutions system."""
        return self.model == "reference"

    @property
    def name(self) -> str:
        """Display name: the label if given, else model plus strategy."""
        if self.label:
            return self.label
        if self.is_reference:
            return "reference"
        if self.kind:
            return self.model
        if self.pipeline:
            return f"{self.model} {self.pipeline}"
        if self.best_of > 1:
            return f"{self.model} best-of-{self.best_of}"
        if self.temperature == 0 and self.samples == 1:
            return f"{self.model} greedy"
        return f"{self.model} T={self.temperature:g} x{self.samples}"

    def models(self) -> list[str]:
        """The model references this system calls (checked before any work starts)."""
        if self.is_reference:
            return []
        kind = kind_of(self)
        return kind.models(self) if kind and kind.models else [self.model]

    def steps(self) -> list[SystemSpec]:
        """What running this system runs, in order (e.g. a routed system's pipelines, then it)."""
        kind = kind_of(self)
        return kind.steps(self) if kind and kind.steps else [self]

    def config(self) -> dict[str, Any]:
        """Everything that changes the outputs (hashed into the attempt key)."""
        return {
            **self.extra,
            "model": self.model,
            "samples": self.samples,
            "best_of": self.best_of,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "api_base": self.api_base,
            **({"pipeline": self.pipeline} if self.pipeline else {}),
        }

    @property
    def hash(self) -> str:
        """Stable hash of `config()`."""
        return config_hash(self.config())


BackendFor = Callable[[str, "str | None"], "Backend"]  # (model, api_base) -> a loaded backend
Solve = Callable[[list["Task"], "GenerationConfig"], list[list["Completion"]]]


@dataclass(frozen=True)
class SystemKind:
    """A kind of system, registered by the package that owns it.

    `name` is what a spec starts with (`NAME:BODY[:options]`, or `NAME[:options]` when `body` is
    False). `options` maps each option the kind takes to a converter (raising ValueError on a bad
    value). `check(spec)` validates or rewrites the parsed spec (raise UserError); `fits(spec,
    benchmark)` raises UserError when the system cannot run on that benchmark. The hooks
    left None fall back to a plain model's behaviour: `models(spec)` lists the models it calls;
    `steps(spec)` the systems run for it, itself last; `solver(spec, benchmark, backend_for)`
    returns how it answers a batch of tasks; `replay(benchmark, spec, tasks, recorded, options)`
    writes its attempts from the recorded attempts of its steps instead (no generation).
    """

    name: str
    help: str
    options: Mapping[str, Callable[[str], Any]] = field(default_factory=dict)
    body: bool = True
    check: Callable[[SystemSpec], SystemSpec] | None = None
    fits: Callable[[SystemSpec, Benchmark], None] | None = None
    models: Callable[[SystemSpec], list[str]] | None = None
    steps: Callable[[SystemSpec], list[SystemSpec]] | None = None
    solver: Callable[[SystemSpec, Benchmark, BackendFor], Solve] | None = None
    replay: Callable[..., list[Attempt]] | None = None


_KINDS: dict[str, SystemKind] | None = None


def system_kinds() -> dict[str, SystemKind]:
    """The installed system kinds (entry points of `ENTRY_POINT_GROUP`), found on first use."""
    global _KINDS
    if _KINDS is None:
        from importlib.metadata import entry_points

        _KINDS = {}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            loaded = point.load()
            for kind in loaded if isinstance(loaded, list | tuple) else [loaded]:
                _KINDS.setdefault(kind.name, kind)
    return dict(_KINDS)


def kind_of(system: SystemSpec) -> SystemKind | None:
    """The registered kind of `system`, None for a plain model."""
    return system_kinds()[system.kind] if system.kind else None


def _model_prefixes() -> tuple[str, ...]:
    from llm_eff.models.registry import model_prefixes

    return model_prefixes()


def _split(spec: str) -> tuple[SystemKind | None, str, str]:
    """(kind, model string, options) of a spec."""
    name, _, rest = spec.partition(":")
    kind = system_kinds().get(name)
    if kind is not None and not kind.body:
        return kind, name, rest
    prefix = f"{name}:" if kind is not None or f"{name}:" in _model_prefixes() else ""
    model, _, options = spec[len(prefix) :].partition(":")
    return kind, prefix + model if model else "", options


def _convert(spec: str, key: str, convert: Callable[[str], Any], raw: str) -> Any:
    try:
        return convert(raw)
    except ValueError as err:
        detail = str(err) if convert not in (int, float) else "must be a number"
        raise UserError(f"system '{spec}': {key} {detail}, got '{raw}'") from None


def parse_system(spec: str) -> SystemSpec:
    """Parse a system spec string (see module docstring); UserError on a malformed one."""
    spec = spec.strip()
    kind, model, options = _split(spec)
    if not model:
        raise UserError(f"empty model in system spec '{spec}'")
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    scheme = ""
    for item in filter(None, (o.strip() for o in options.split(","))):
        if item.startswith("best-of-"):
            key, raw = "best_of", item.removeprefix("best-of-")
        elif "=" in item:
            key, raw = (s.strip() for s in item.split("=", 1))
        else:
            raise UserError(f"system '{spec}': cannot read option '{item}' (use key=value)")
        key = {"name": "label", "n": "samples"}.get(key, key)
        if kind is not None and key in kind.options:
            extra[key] = _convert(spec, key, kind.options[key], raw)
        elif key in _NUMERIC:
            values[key] = _convert(spec, key, _NUMERIC[key], raw)
        elif key in ("label", "api_base", "pipeline"):
            values[key] = raw
        elif key == "quant" and kind is None:
            scheme = raw
        else:
            raise UserError(f"system '{spec}': unknown option '{key}'")
    if scheme:  # part of the model: `parse_model` resolves and checks it
        from llm_eff.models.quant import split_quant

        model = f"{model}:quant={split_quant(f'{model}:quant={scheme}')[1]}"
    if values.get("best_of", 1) > 1 and "temperature" not in values:
        values["temperature"] = BEST_OF_TEMPERATURE
    if values.get("samples", 1) < 1 or values.get("best_of", 1) < 1:
        raise UserError(f"system '{spec}': samples and best_of must be >= 1")
    system = SystemSpec(model=model, extra=extra, kind=kind.name if kind else "", **values)
    return kind.check(system) if kind is not None and kind.check else system


def as_model(system: SystemSpec, model: str, **changes: Any) -> SystemSpec:
    """A plain-model system calling `model` with `system`'s decoding settings (kind options off)."""
    return replace(system, **{"model": model, "extra": {}, "kind": "", "label": "", **changes})


def backend_solver(backend: Backend, system: SystemSpec, benchmark: Benchmark) -> Solve:
    """How a backend answers tasks: the benchmark's pipeline if the system names one, else one
    generation per task prompt (a one-message chat)."""
    if system.pipeline:
        if benchmark.solve is None:
            raise UserError(f"{benchmark.name} has no pipelines (system '{system.name}')")
        solve = benchmark.solve
        return lambda tasks, config: solve(system.pipeline, backend, tasks, config)
    return lambda tasks, config: backend.generate([user_chat(t.prompt) for t in tasks], config)


def system_solver(system: SystemSpec, benchmark: Benchmark, backend_for: BackendFor) -> Solve:
    """How `system` answers a batch of tasks: its kind's solver, or its model's backend."""
    kind = kind_of(system)
    if kind is not None and kind.solver is not None:
        return kind.solver(system, benchmark, backend_for)
    if kind is not None and kind.replay is not None:
        raise UserError(f"system '{system.name}' replays recorded attempts: it cannot be called")
    return backend_solver(backend_for(system.model, system.api_base), system, benchmark)


def kinds_help() -> str:
    """One line per registered system kind, for `--help`."""
    return "; ".join(f"{k.name}: {k.help}" for k in system_kinds().values())
