"""The model kind for Dr.LLM routers (`drllm:DIR`, written by `llm-eff depth train-routers`)
over the base model they record; attempts report the layers executed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_eff.models.registry import ModelKind, ModelRef


def parse(spec: str) -> ModelRef | None:
    """`drllm:DIR` (UserError unless DIR holds routers), or None."""
    if not spec.startswith("drllm:"):
        return None
    from llm_eff.depth.router import read_config

    path = Path(spec.removeprefix("drllm:")).expanduser()
    read_config(path)
    return ModelRef("drllm", f"drllm:{path.resolve().name}", str(path.resolve()))


def load(ref: ModelRef) -> tuple[Any, Any]:
    """(routed model, the base model's tokenizer)."""
    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.depth.router import load_drllm, read_config
    from llm_eff.models import parse_model

    base, tokenizer = load_local(parse_model(read_config(ref.path)["base_model"]))
    return load_drllm(ref.path, base), tokenizer


KIND = ModelKind("drllm", parse, load, prefix="drllm:")
