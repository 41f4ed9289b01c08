"""Parameter-efficient tuning behind one interface.

    from llm_eff.peft import MethodConfig, prepare, save, load
    model = prepare(base_model, MethodConfig("lst", reduction=8))   # then any HF/accelerate loop
    save(model, "out/", config); model = load(fresh_base_model, "out/")

Methods (each module's docstring names its paper):
    lora / qlora   `llm_eff.peft.lora`    low-rank updates through Hugging Face peft
    bit1           `llm_eff.peft.binary`  LoRA with 1-bit (sign + scale + offset) matrices
    lst            `llm_eff.peft.ladder`  Ladder Side-Tuning: a pruned side network on a ladder
    unipt          `llm_eff.peft.unipt`   UniPT: a parallel network over all layer outputs
    full           every parameter trains (the baseline)
`llm_eff.peft.train.finetune` (and `llm-eff finetune`) trains, saves, reloads and evaluates one.
"""

from typing import Any

from llm_eff.peft.config import METHODS, MethodConfig, canonical_method

_API = ("load", "method_of", "parameter_counts", "prepare", "save", "weights_size")


def __getattr__(name: str) -> Any:
    """The torch-backed functions of `llm_eff.peft.api`, imported on first use (so that the
    package, and its model kind, load without torch)."""
    if name in _API:
        from llm_eff.peft import api

        return getattr(api, name)
    raise AttributeError(f"module 'llm_eff.peft' has no attribute {name!r}")


__all__ = [
    "METHODS",
    "MethodConfig",
    "canonical_method",
    "load",
    "method_of",
    "parameter_counts",
    "prepare",
    "save",
    "weights_size",
]
