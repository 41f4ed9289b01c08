"""One entry point per step: `prepare` a model for a method, `save` it, `load` any saved adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from llm_eff.core.errors import UserError
from llm_eff.peft.config import MethodConfig

ADAPTER_CONFIG = "adapter_config.json"
BASE_FILE = "llm_eff_base.json"  # {"model": the --model string the adapter was trained on}


def _as_config(config: MethodConfig | str) -> MethodConfig:
    return MethodConfig(config) if isinstance(config, str) else config


def prepare(model: nn.Module, config: MethodConfig | str) -> nn.Module:
    """`model` ready to train with the method: only the method's parameters require grad.

    The result trains in a normal Hugging Face `Trainer` or accelerate loop: calling it with
    `input_ids`, `attention_mask` and `labels` returns an output with `.loss`.
    """
    from llm_eff.peft.methods import get_method

    config = _as_config(config)
    return get_method(config.method).prepare(model, config)


def save(
    model: nn.Module, out_dir: str | Path, config: MethodConfig | str, base_model: str = ""
) -> None:
    """Write the trained method's weights to `out_dir` (adapters in peft's file layout).

    `base_model` (the `--model` string of the base) is recorded beside them, so that the
    directory alone names a system: `llm-eff eval --system DIR`.
    """
    config = _as_config(config)
    if base_model:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / BASE_FILE).write_text(json.dumps({"model": base_model}) + "\n")
    from llm_eff.peft.methods import get_method

    get_method(config.method).save(model, Path(out_dir), config)


def method_of(adapter_dir: str | Path) -> str:
    """The method that wrote `adapter_dir`; UserError if it holds no adapter or model."""
    path = Path(adapter_dir)
    config_file = path / ADAPTER_CONFIG
    if config_file.is_file():
        try:
            saved = json.loads(config_file.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{config_file}: not valid JSON ({exc.msg})") from None
        if "llm_eff_method" in saved:
            return str(saved["llm_eff_method"])
        if saved.get("peft_type") == "LORA":
            return "lora"
        raise UserError(f"{config_file}: unsupported adapter type {saved.get('peft_type')!r}")
    if (path / "config.json").is_file():
        return "full"
    raise UserError(f"{path}: no adapter_config.json or config.json (not a saved adapter)")


def base_model_of(adapter_dir: str | Path) -> str:
    """The base `--model` string recorded by `save`; UserError if the adapter has none."""
    path = Path(adapter_dir) / BASE_FILE
    if not path.is_file():
        raise UserError(f"{adapter_dir}: no {BASE_FILE}, so its base model is unknown")
    try:
        return str(json.loads(path.read_text())["model"])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f'{path}: expected {{"model": "..."}}') from None


def load(model: nn.Module | None, adapter_dir: str | Path) -> Any:
    """Open any saved adapter over the base `model`, reading which method from its config.

    Each method loads its own (`llm_eff.peft.methods`): LoRA and its variants through
    `peft.PeftModel.from_pretrained`, 1-bit adapters through peft's LoRA with their packed
    weights, LST and UniPT through their own `from_pretrained`; a fully fine-tuned model
    directory is loaded by itself (`model` is then not needed).
    """
    from llm_eff.peft.methods import get_method

    method = get_method(method_of(adapter_dir))
    if model is None and method.name != "full":
        raise UserError(f"{adapter_dir}: a {method.name} adapter needs its base model")
    return method.load(model, Path(adapter_dir))


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def weights_size(out_dir: str | Path) -> int:
    """Bytes of the weight files (safetensors/bin) written to `out_dir`."""
    path = Path(out_dir)
    return sum(
        f.stat().st_size
        for f in path.iterdir()
        if f.suffix in (".safetensors", ".bin") and f.is_file()
    )
