"""`MethodConfig`: which parameter-efficient method to apply, and its knobs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llm_eff.core.errors import UserError

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def canonical_method(name: str) -> str:
    """The canonical method name (see `llm_eff.peft.methods`); UserError for an unknown one."""
    from llm_eff.peft.methods import get_method

    return get_method(name).name


def __getattr__(name: str) -> Any:
    """`METHODS`: the registered method names, in their listed order."""
    if name == "METHODS":
        from llm_eff.peft.methods import methods

        return tuple(methods())
    raise AttributeError(f"module 'llm_eff.peft.config' has no attribute {name!r}")


@dataclass
class MethodConfig:
    """A tuning method and its hyper-parameters.

    rank, alpha, dropout, target_modules: LoRA, QLoRA and 1-bit adapters.
    reduction: width reduction factor r of the LST side network and the UniPT parallel network.
    gate_temperature: temperature T of LST's ladder gates, mu = sigmoid(alpha / T).
    """

    method: str = "lora"
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    reduction: int = 8
    gate_temperature: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.method = canonical_method(self.method)
        self.target_modules = tuple(self.target_modules)
        if self.rank < 1:
            raise UserError(f"rank must be >= 1, got {self.rank}")
        if self.reduction < 1:
            raise UserError(f"reduction must be >= 1, got {self.reduction}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in adapter_config.json)."""
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodConfig:
        """Inverse of `to_dict` (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
