"""QLoRA (Dettmers et al., 2023): LoRA over a 4-bit NF4 backbone (CUDA + bitsandbytes)."""

from llm_eff.peft.methods import Method
from llm_eff.peft.methods.lora import _prepare

METHOD = Method(
    "qlora",
    "LoRA over a 4-bit NF4 backbone (CUDA, bitsandbytes)",
    2e-4,
    _prepare,
    quantized_base=True,
)
