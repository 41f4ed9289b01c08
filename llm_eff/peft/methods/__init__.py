"""The tuning-method registry: one module per method in this package, each defining `METHOD`.

A method is found by listing this package's modules, so adding one (see `dora.py`) is one new
module and nothing else: `llm-eff finetune --method`, `prepare` / `save` / `load`, the default
learning rate and the help all come from its `Method`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError


def save_pretrained(model: Any, out_dir: Path, config: Any) -> None:
    """The default save: the model's own `save_pretrained` (peft's layout for peft models)."""
    model.save_pretrained(str(out_dir))


def load_peft(model: Any, adapter_dir: Path) -> Any:
    """Open an adapter in peft's own format (LoRA and its variants) over `model`."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir))


@dataclass(frozen=True)
class Method:
    """A tuning method: how to prepare a model, save what trained, and load it back.

    `prepare(model, config)` returns the model with only the method's parameters trainable;
    `save(model, out_dir, config)` writes them; `load(base, adapter_dir)` reopens them.
    `quantized_base`: the base model is loaded in 4 bits (QLoRA).
    """

    name: str
    help: str
    default_lr: float
    prepare: Callable[[Any, Any], Any]
    load: Callable[[Any, Path], Any] = load_peft
    save: Callable[[Any, Path, Any], None] = save_pretrained
    quantized_base: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, Method] = {}
ORDER = ("lora", "qlora", "lst", "unipt", "bit1", "full")  # listed first, in this order


def methods() -> dict[str, Method]:
    """Every method, by name (the modules of this package, imported on first use)."""
    if not _REGISTRY:
        found = {}
        for info in pkgutil.iter_modules(__path__):
            method = importlib.import_module(f"{__name__}.{info.name}").METHOD
            found[method.name] = method
        for name in sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n)):
            _REGISTRY[name] = found[name]
    return _REGISTRY


def get_method(name: str) -> Method:
    """The method called `name` (or one of its aliases); UserError for an unknown one."""
    key = name.strip().lower()
    for method in methods().values():
        if key == method.name or key in method.aliases:
            return method
    raise UserError(f"unknown method '{name}': use one of {', '.join(methods())}")


def method_help() -> str:
    """One line per method for `--help`: its name and what trains."""
    return "; ".join(f"{m.name}: {m.help}" for m in methods().values())
