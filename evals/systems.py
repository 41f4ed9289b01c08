"""Systems: what is evaluated. A system is a model plus decoding settings plus a strategy.

Spec strings (the CLI's `--system`):

    reference                          the benchmark's reference solutions (no model)
    smollm2-135m                       greedy, one sample per task
    smollm2-135m:best-of-4             4 samples at temperature 0.8; the attempt passes if any
                                       candidate passes the tests (test feedback), and costs all 4
    MODEL:samples=5,temperature=0.8    5 independent attempts per task (for pass@k)
    MODEL:max_tokens=256,name=short    any of: samples, best_of, temperature, top_p,
                                       max_tokens, name, api_base, pipeline
    MODEL:pipeline=advanced            the benchmark's multi-call pipeline (Spider: basic,
                                       intermediate, advanced, cascade)
    drllm:DIR[:options]                Dr.LLM routers over their base model (layers executed
                                       are reported per attempt)
    sql-basic, sql-intermediate,       Spider's pipelines on the embedded model (base=MODEL for
    sql-advanced, sql-cascade          another), named as written
    cascade:WEAK>STRONG[:k=3,agree=0.67]
                                       answer with WEAK, escalate to STRONG when WEAK's samples
                                       disagree (self-consistency; routers/cascade.py)
    routed:KIND[:base=M,folds=5]       a router (rules, knn, logistic, random, oracle) picking
                                       the pipeline per question, cross-validated by database
                                       from the pipelines' attempts (see routers/sql/routed.py)
    DIR[:options]                      an adapter written by finetune / rl train
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.core.types import config_hash

_NUMERIC = {"samples": int, "best_of": int, "temperature": float, "top_p": float, "max_tokens": int}
BEST_OF_TEMPERATURE = 0.8


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
    extra: dict[str, Any] = field(default_factory=dict)

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
        if self.routed_kind or self.cascade:
            return self.model
        if self.pipeline:
            return f"{self.model} {self.pipeline}"
        if self.best_of > 1:
            return f"{self.model} best-of-{self.best_of}"
        if self.temperature == 0 and self.samples == 1:
            return f"{self.model} greedy"
        return f"{self.model} T={self.temperature:g} x{self.samples}"

    @property
    def cascade(self) -> tuple[str, str] | None:
        """(weak, strong) models of a `cascade:WEAK>STRONG` system, None for others."""
        if not self.model.startswith("cascade:"):
            return None
        weak, _, strong = self.model.removeprefix("cascade:").partition(">")
        return weak, strong

    def models(self) -> list[str]:
        """The model references this system calls (a cascade's two, a routed system's base)."""
        if self.is_reference:
            return []
        if self.cascade:
            return list(self.cascade)
        if self.routed_kind:
            return [self.extra.get("base", DEFAULT_BASE)]
        return [self.model]

    @property
    def routed_kind(self) -> str:
        """The router kind of a `routed:KIND` system, '' for any other system."""
        return self.model.removeprefix("routed:") if self.model.startswith("routed:") else ""

    def routed_targets(self) -> list[SystemSpec]:
        """The pipeline systems a routed system chooses between (same model and decoding)."""
        from routers.sql.routed import TARGETS

        base = self.extra.get("base", DEFAULT_BASE)
        return [SystemSpec(model=base, max_tokens=self.max_tokens, api_base=self.api_base,
                           pipeline=p) for p in TARGETS]  # fmt: skip

    def steps(self) -> list[SystemSpec]:
        """What running this system runs, in order: a routed system's pipelines, then itself."""
        return [*self.routed_targets(), self] if self.routed_kind else [self]

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


DEFAULT_BASE = "smollm2-135m"
SQL_ALIASES = ("sql-basic", "sql-intermediate", "sql-advanced", "sql-cascade")


def parse_system(spec: str) -> SystemSpec:
    """Parse a system spec string (see module docstring); UserError on a malformed one."""
    spec = spec.strip()
    prefixes = ("api:", "hf:", "drllm:", "routed:", "cascade:")
    prefix = next((p for p in prefixes if spec.startswith(p)), "")
    model, _, options = spec[len(prefix) :].partition(":")
    model = prefix + model if model else ""
    if not model:
        raise UserError(f"empty model in system spec '{spec}'")
    values: dict[str, Any] = {}
    for item in filter(None, (o.strip() for o in options.split(","))):
        if item.startswith("best-of-"):
            key, raw = "best_of", item.removeprefix("best-of-")
        elif "=" in item:
            key, raw = (s.strip() for s in item.split("=", 1))
        else:
            raise UserError(f"system '{spec}': cannot read option '{item}' (use key=value)")
        key = {"name": "label", "n": "samples"}.get(key, key)
        if key in _NUMERIC:
            try:
                values[key] = _NUMERIC[key](raw)
            except ValueError:
                raise UserError(f"system '{spec}': {key} must be a number, got '{raw}'") from None
        elif key in ("label", "api_base", "pipeline"):
            values[key] = raw
        elif key == "base" and (model in SQL_ALIASES or prefix == "routed:"):
            values.setdefault("extra", {})["base"] = raw
        elif key in ("k", "agree") and prefix == "cascade:":
            try:
                value = int(raw) if key == "k" else float(raw)
            except ValueError:
                raise UserError(f"system '{spec}': {key} must be a number, got '{raw}'") from None
            values.setdefault("extra", {})[key] = value
        elif key == "folds" and prefix == "routed:":
            if not raw.isdigit() or int(raw) < 2:
                raise UserError(f"system '{spec}': folds must be an integer >= 2, got '{raw}'")
            values.setdefault("extra", {})["folds"] = int(raw)
        else:
            raise UserError(f"system '{spec}': unknown option '{key}'")
    if values.get("best_of", 1) > 1 and "temperature" not in values:
        values["temperature"] = BEST_OF_TEMPERATURE
    if values.get("samples", 1) < 1 or values.get("best_of", 1) < 1:
        raise UserError(f"system '{spec}': samples and best_of must be >= 1")
    if model in SQL_ALIASES:
        base = values.pop("extra", {}).get("base", DEFAULT_BASE)
        values.setdefault("label", model)
        return SystemSpec(model=base, pipeline=model.removeprefix("sql-"), **values)
    if prefix == "cascade:":
        weak, sep, strong = model.removeprefix(prefix).partition(">")
        if not (sep and weak and strong):
            raise UserError(f"system '{spec}': write cascade:WEAK>STRONG, e.g. "
                            "cascade:smollm2-135m>openai/gpt-4o-mini")  # fmt: skip
    if prefix == "routed:":
        from routers.sql.routed import KINDS

        if model.removeprefix(prefix) not in KINDS:
            raise UserError(f"system '{spec}': unknown router '{model.removeprefix(prefix)}' "
                            f"(known: {', '.join(KINDS)})")  # fmt: skip
        if values.get("samples", 1) > 1 or values.get("best_of", 1) > 1 or values.get("pipeline"):
            raise UserError(f"system '{spec}': a routed system takes no samples/best_of/pipeline")
    return SystemSpec(model=model, **values)
