"""The model kind for saved Mixture-of-Recursions models: a Hugging Face model directory
whose `config.json` says `model_type: "mor"` (`hf:DIR` or `DIR`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_eff.models.registry import ModelKind, ModelRef


def parse(spec: str) -> ModelRef | None:
    """A MoR model directory, or None."""
    path = Path(spec.removeprefix("hf:")).expanduser()
    config = path / "config.json"
    if not config.is_file():
        return None
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (json.JSONDecodeError, OSError, AttributeError):
        return None  # the hf kind reports a broken config
    if model_type != "mor":
        return None
    return ModelRef("mor", path.resolve().name, str(path.resolve()))


def load(ref: ModelRef) -> tuple[Any, Any]:
    """(model, tokenizer) through transformers' Auto classes, MoR registered with them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm_eff.mor import register

    register()
    return AutoModelForCausalLM.from_pretrained(ref.path), AutoTokenizer.from_pretrained(ref.path)


KIND = ModelKind("mor", parse, load)
