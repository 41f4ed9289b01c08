"""1-bit adapters: LoRA whose A and B matrices are binarised (Bi-LoRA; the binary adapters of
PETL-ViT, Jie et al., "Revisiting the Parameter Efficiency of Adapters from the Perspective of
Precision Redundancy", ICCV 2023).

Each adapter matrix W keeps full-precision latent weights for training. The forward pass uses
its binarised version: standardise (mean mu, standard deviation sigma), take the sign, scale by
the Gaussian-optimal level sqrt(2/pi) ~ 0.798 (the mean of |x| for x ~ N(0, 1)), de-standardise:

    W_b = mu + 0.798 * sigma * sign(W - mu)

one scale and one offset per matrix (kept in fp16, the precision they are saved in). Gradients
pass straight through the sign (straight-through estimator). The adapter lives inside peft's
LoRA layers as a parametrisation of their weights; it is saved as one bit per weight, packed 8
to a byte, plus the fp16 scale and offset of each matrix, so the file is about 16x smaller than
the same adapter in fp16, and reloading gives bit-identical outputs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from llm_eff.core.errors import UserError
from llm_eff.peft.config import MethodConfig
from llm_eff.peft.lora import lora_config

LEVEL = math.sqrt(2.0 / math.pi)
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


def scale_offset(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset) of a matrix: 0.798 * std and mean, rounded to fp16 precision."""
    mean = w.mean()
    std = w.std() if w.numel() > 1 else torch.zeros((), dtype=w.dtype, device=w.device)
    scale = (std * LEVEL).half().to(w.dtype)
    return scale, mean.half().to(w.dtype)


def dequantize(bits: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """offset + scale * (+1 where bits else -1)."""
    return torch.where(bits, scale, -scale) + offset


class _BinarizeSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:  # noqa: ANN401
        scale, offset = scale_offset(w)
        return dequantize(w >= offset, scale, offset)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN401
        return grad


class Binarize(nn.Module):
    """Parametrisation: the binarised weight, straight-through gradient to the latent one."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Binarise `w` (see the module docstring)."""
        return _BinarizeSTE.apply(w)


def adapter_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """peft's LoRA A/B linear layers, in a stable order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and (".lora_A." in name or ".lora_B." in name)
    ]


def prepare_binary(model: nn.Module, config: MethodConfig) -> nn.Module:
    """Wrap `model` in peft LoRA and binarise every adapter matrix."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora_config(model, config))
    for _, linear in adapter_linears(peft_model):
        parametrize.register_parametrization(linear, "weight", Binarize())
    return peft_model


def _binary_weight(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if parametrize.is_parametrized(linear, "weight"):
        latent = linear.parametrizations.weight.original.detach()
    else:
        latent = linear.weight.detach()
    scale, offset = scale_offset(latent)
    return latent >= offset, scale, offset


def save_binary(model: nn.Module, out_dir: str | Path, config: MethodConfig) -> None:
    """Write the packed 1-bit adapter in peft's layout (config JSON + safetensors)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    packed: list[np.ndarray] = []
    scales, matrices = [], []
    for name, linear in adapter_linears(model):
        bits, scale, offset = _binary_weight(linear)
        packed.append(bits.cpu().numpy().reshape(-1))
        scales.append([float(scale), float(offset)])
        matrices.append([name, list(bits.shape)])
    tensors = {
        "packed_bits": torch.from_numpy(np.packbits(np.concatenate(packed))),
        "scale_offset": torch.tensor(scales, dtype=torch.float16),
    }
    save_file(tensors, str(out / WEIGHTS_NAME))
    peft_config = model.peft_config["default"].to_dict()
    peft_config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_config.items()}
    peft_config.update(
        {
            "llm_eff_method": "bit1",
            "method_config": config.to_dict(),
            "binary_matrices": matrices,
        }
    )
    (out / CONFIG_NAME).write_text(json.dumps(peft_config, indent=2, default=str) + "\n")


def load_binary(model: nn.Module, adapter_dir: str | Path) -> nn.Module:
    """A peft LoRA model over `model` with the saved binary weights (for inference)."""
    from peft import get_peft_model
    from safetensors.torch import load_file

    path = Path(adapter_dir)
    saved = json.loads((path / CONFIG_NAME).read_text())
    config = MethodConfig.from_dict(saved.get("method_config", {}))
    peft_model = get_peft_model(model, lora_config(model, config))
    state = load_file(str(path / WEIGHTS_NAME))
    bits_all = np.unpackbits(state["packed_bits"].numpy())
    scales = state["scale_offset"]
    linears = dict(adapter_linears(peft_model))
    position = 0
    for i, (name, shape) in enumerate(saved["binary_matrices"]):
        if name not in linears or list(linears[name].weight.shape) != shape:
            raise UserError(f"{path}: adapter matrix {name} does not match this model")
        n = math.prod(shape)
        bits = torch.from_numpy(bits_all[position : position + n].astype(bool)).view(shape)
        position += n
        weight = linears[name].weight
        scale, offset = (scales[i, j].to(weight.dtype) for j in range(2))
        with torch.no_grad():
            weight.copy_(dequantize(bits, scale, offset))
    return peft_model
