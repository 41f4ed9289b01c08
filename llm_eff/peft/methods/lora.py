"""LoRA (Hu et al., 2021) through Hugging Face peft: see `llm_eff.peft.lora`."""

from typing import Any

from llm_eff.peft.methods import Method


def _prepare(model: Any, config: Any) -> Any:
    from llm_eff.peft.lora import prepare_lora

    return prepare_lora(model, config)


METHOD = Method("lora", "low-rank updates B A on every linear layer (peft)", 2e-4, _prepare)
