"""DoRA (Liu et al., 2024): LoRA on the direction of each weight, with its magnitude trained
apart (weight-decomposed low-rank adaptation), through peft's `use_dora`."""

from typing import Any

from llm_eff.peft.methods import Method


def _prepare(model: Any, config: Any) -> Any:
    from peft import get_peft_model

    from llm_eff.peft.lora import lora_config

    settings = lora_config(model, config)
    settings.use_dora = True
    return get_peft_model(model, settings)


METHOD = Method(
    "dora", "LoRA on each weight's direction, its magnitude trained apart (peft)", 2e-4, _prepare
)
