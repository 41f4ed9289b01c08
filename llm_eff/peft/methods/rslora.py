"""rsLoRA (Kalajdzievski, 2023): LoRA scaled by alpha / sqrt(r) instead of alpha / r, so that
higher ranks keep learning, through peft's `use_rslora`."""

from typing import Any

from llm_eff.peft.methods import Method


def _prepare(model: Any, config: Any) -> Any:
    from peft import get_peft_model

    from llm_eff.peft.lora import lora_config

    settings = lora_config(model, config)
    settings.use_rslora = True
    return get_peft_model(model, settings)


METHOD = Method("rslora", "LoRA scaled by alpha / sqrt(rank), rank-stable (peft)", 2e-4, _prepare)
