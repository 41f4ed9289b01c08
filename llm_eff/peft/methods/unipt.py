"""UniPT (Diao et al., 2024): see `llm_eff.peft.unipt`."""

from typing import Any

from llm_eff.peft.methods import Method


def _prepare(model: Any, config: Any) -> Any:
    from llm_eff.peft.unipt import UniPTModel

    return UniPTModel(model, config)


def _load(model: Any, adapter_dir: Any) -> Any:
    from llm_eff.peft.unipt import UniPTModel

    return UniPTModel.from_pretrained(model, adapter_dir)


METHOD = Method(
    "unipt",
    "a parallel network over all layer outputs; no backward through the backbone",
    1e-3,
    _prepare,
    _load,
)
