"""LoRA (Hu et al., 2021) and QLoRA (Dettmers et al., 2023) through Hugging Face `peft`.

LoRA adds a trainable low-rank update B A (rank r, scaled by alpha / r) to the chosen linear
layers of a frozen model. QLoRA does the same over a 4-bit NF4-quantised backbone; it needs a
CUDA device and `bitsandbytes` (`pip install 'llm-eff[qlora]'`). Adapters are saved and loaded
in peft's own format, so `peft.PeftModel.from_pretrained` opens them too.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from llm_eff.core.errors import UserError
from llm_eff.peft.config import MethodConfig


def present_targets(model: nn.Module, targets: tuple[str, ...]) -> list[str]:
    """The target module names that exist as linear layers in `model`."""
    found = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) or type(module).__name__ == "Linear4bit"
    }
    return [t for t in targets if t in found]


def lora_config(model: nn.Module, config: MethodConfig, task_type: str = "CAUSAL_LM") -> Any:
    """A `peft.LoraConfig` for `model`; UserError when none of the target modules exist."""
    from peft import LoraConfig

    targets = present_targets(model, config.target_modules)
    if not targets:
        arch = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise UserError(
            f"method {config.method} found none of the target modules "
            f"{', '.join(config.target_modules)} in this '{arch}' model; pass --target-modules"
        )
    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        task_type=task_type,
    )


def check_qlora() -> None:
    """UserError unless a CUDA device and bitsandbytes are available (QLoRA needs both)."""
    import torch

    if not torch.cuda.is_available():
        raise UserError("method qlora needs a CUDA GPU (4-bit bitsandbytes kernels)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("method qlora needs bitsandbytes: pip install 'llm-eff[qlora]'") from None


def quantization_config() -> Any:
    """The QLoRA paper's 4-bit NF4 setup with double quantisation, computing in bf16."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def prepare_lora(model: nn.Module, config: MethodConfig) -> nn.Module:
    """Wrap `model` in a peft LoRA model (for qlora: a 4-bit model loaded by `load_base`)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        check_qlora()
        if not getattr(model, "is_loaded_in_4bit", False):
            raise UserError("method qlora needs the model loaded in 4-bit (llm_eff.peft.load_base)")
        model = prepare_model_for_kbit_training(model)
    return get_peft_model(model, lora_config(model, config))
