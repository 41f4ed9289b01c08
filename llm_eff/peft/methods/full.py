"""Full fine-tuning: every weight trains (the baseline); saved as a whole model directory."""

from typing import Any

from llm_eff.peft.methods import Method


def _prepare(model: Any, config: Any) -> Any:
    model.requires_grad_(True)
    return model


def _load(model: Any, adapter_dir: Any) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(adapter_dir))


METHOD = Method("full", "every weight (the baseline)", 2e-5, _prepare, _load)
