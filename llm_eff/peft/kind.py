"""The model kind for adapters saved by `llm-eff finetune` / `llm-eff rl train`: a directory
with `adapter_config.json`, loaded over the base model it records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_eff.models.registry import ModelKind, ModelRef


def parse(spec: str) -> ModelRef | None:
    """An adapter directory, or None."""
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file():
        return ModelRef("adapter", path.resolve().name, str(path.resolve()))
    return None


def load(ref: ModelRef) -> tuple[Any, Any]:
    """(base model with the adapter, the base's tokenizer); LoRA is folded into the weights,
    unless the base is quantized (`MODEL:quant=`): packed weights cannot take the update."""
    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.models import parse_model
    from llm_eff.models.quant import scheme_of
    from llm_eff.peft.api import base_model_of
    from llm_eff.peft.api import load as load_adapter

    base, tokenizer = load_local(parse_model(base_model_of(ref.path)))
    model = load_adapter(base, ref.path)
    if hasattr(model, "merge_and_unload") and scheme_of(base) in ("fp32", "bf16", "fp16"):
        model = model.merge_and_unload()
    return model, tokenizer


KIND = ModelKind("adapter", parse, load)
