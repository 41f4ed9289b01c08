"""Mixture-of-Recursions models (Bae et al., 2025), registered with the transformers Auto classes.

`register()` (called on first use of `MoRConfig`, `MoRForCausalLM` or `MoRCache` from here, and
by the `mor` model kind before loading) makes `AutoConfig` / `AutoModelForCausalLM` load saved
MoR models (`model_type: "mor"`). The package itself imports neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MoRCache", "MoRConfig", "MoRForCausalLM", "register"]


def register() -> None:
    """Register MoR with transformers' Auto classes (idempotent)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from llm_eff.mor.config import MoRConfig
    from llm_eff.mor.modeling import MoRForCausalLM

    AutoConfig.register("mor", MoRConfig, exist_ok=True)
    AutoModelForCausalLM.register(MoRConfig, MoRForCausalLM, exist_ok=True)


def __getattr__(name: str) -> Any:
    """The MoR classes, imported (and registered) on first use."""
    if name in ("MoRCache", "MoRConfig", "MoRForCausalLM"):
        register()
        from llm_eff.mor import cache, config, modeling

        globals().update(
            MoRCache=cache.MoRCache,
            MoRConfig=config.MoRConfig,
            MoRForCausalLM=modeling.MoRForCausalLM,
        )  # later lookups skip this
        return globals()[name]
    raise AttributeError(f"module 'llm_eff.mor' has no attribute {name!r}")
