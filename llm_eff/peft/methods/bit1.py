"""1-bit LoRA: A and B as sign x scale + offset per matrix (see `llm_eff.peft.binary`)."""

from typing import Any

from llm_eff.peft.methods import Method


def _prepare(model: Any, config: Any) -> Any:
    from llm_eff.peft.binary import prepare_binary

    return prepare_binary(model, config)


def _save(model: Any, out_dir: Any, config: Any) -> None:
    from llm_eff.peft.binary import save_binary

    save_binary(model, out_dir, config)


def _load(model: Any, adapter_dir: Any) -> Any:
    from llm_eff.peft.binary import load_binary

    return load_binary(model, adapter_dir)


METHOD = Method(
    "bit1",
    "LoRA with 1-bit A and B, packed bits on disk",
    5e-4,
    _prepare,
    _load,
    _save,
    aliases=("bitfit1", "1bit"),
)
