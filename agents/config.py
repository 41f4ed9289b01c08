"""`AgentConfig`: every module of the agent is a switch (see agents/__init__.py), read from YAML.

model: smollm2-135m          # backbone for acting; planner_model / judge_model default to it
api_base: http://host:8000/v1  # optional: API models served by an OpenAI-compatible server
planning: every:2            # none | once | every:K (re-plan every K steps)
tools: [python, read_file, calculator, sql]   # and search with search_function: mod:func
memory: simple               # none | simple (actions and observations) | summary (LLM-written)
max_steps: 5
scaling: none                # none | vote:N | judge:N (best-of-N, majority vote or LLM judge)
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from llm_eff.core.errors import UserError
from llm_eff.core.types import config_hash

DEFAULT_TOOLS = ("python", "read_file", "calculator", "sql")
MEMORIES = ("none", "simple", "summary")


@dataclass
class AgentConfig:
    """One agent configuration."""

    name: str = ""
    model: str = "smollm2-135m"
    api_base: str | None = None
    planner_model: str | None = None
    judge_model: str | None = None
    planning: str = "none"
    tools: tuple[str, ...] = DEFAULT_TOOLS
    search_function: str | None = None
    memory: str = "simple"
    max_steps: int = 5
    scaling: str = "none"
    sample_temperature: float = 0.7
    max_tokens: int = 192
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tools = tuple(self.tools)
        _ = (self.replan_every, self.samples)  # validate planning and scaling
        if self.memory not in MEMORIES:
            raise UserError(f"memory must be one of {', '.join(MEMORIES)}, got '{self.memory}'")
        if self.max_steps < 1:
            raise UserError(f"max_steps must be >= 1, got {self.max_steps}")
        if not self.name:
            self.name = self.default_name()

    @property
    def replan_every(self) -> int:
        """0: no planning; -1: plan once; K > 0: re-plan every K steps."""
        if self.planning == "none":
            return 0
        if self.planning == "once":
            return -1
        head, _, k = self.planning.partition(":")
        if head == "every" and k.isdigit() and int(k) > 0:
            return int(k)
        raise UserError(f"planning must be none, once or every:K, got '{self.planning}'")

    @property
    def samples(self) -> int:
        """How many agent runs one attempt makes (best-of-N), 1 without scaling."""
        if self.scaling == "none":
            return 1
        kind, _, n = self.scaling.partition(":")
        if kind in ("vote", "judge") and n.isdigit() and int(n) >= 2:
            return int(n)
        raise UserError(f"scaling must be none, vote:N or judge:N (N >= 2), got '{self.scaling}'")

    def models(self) -> dict[str, str]:
        """The model of each role."""
        return {
            "actor": self.model,
            "planner": self.planner_model or self.model,
            "judge": self.judge_model or self.model,
        }

    def default_name(self) -> str:
        """A short name from the switches."""
        parts = [
            self.model,
            f"plan={self.planning}",
            f"mem={self.memory}",
            f"steps={self.max_steps}",
            "tools=" + "+".join(self.tools),
        ]
        if self.scaling != "none":
            parts.append(self.scaling)
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready form."""
        data = asdict(self)
        data["tools"] = list(self.tools)
        return data

    @property
    def hash(self) -> str:
        """Identity of the configuration (the name excluded)."""
        return config_hash({k: v for k, v in self.to_dict().items() if k != "name"})

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> AgentConfig:
        """Build from a mapping; UserError on unknown keys."""
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a mapping of agent settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        return cls(**data)


def _read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def load_config(path: str | Path) -> AgentConfig:
    """An agent configuration from a YAML file."""
    return AgentConfig.from_dict(_read_yaml(path), str(path))


def load_grid(path: str | Path) -> list[AgentConfig]:
    """The configurations of a sweep: `base:` settings crossed with every `grid:` list."""
    data = _read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("grid"), dict):
        raise UserError(f"{path}: needs a 'grid:' mapping of setting -> list of values")
    base = data.get("base") or {}
    keys = list(data["grid"])
    values = [v if isinstance(v, list) else [v] for v in data["grid"].values()]
    configs = []
    for combo in itertools.product(*values):
        configs.append(
            AgentConfig.from_dict({**base, **dict(zip(keys, combo, strict=True))}, str(path))
        )
    return configs
