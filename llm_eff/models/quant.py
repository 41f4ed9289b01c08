"""Weight precision and quantization of local models: the `MODEL:quant=SCHEME` option.

    fp32, bf16, fp16   every weight in that float type (a cast; no quantization)
    int8, int4         weight-only integer quantization of the linear layers by optimum-quanto
                       (int8 per output channel; int4 in groups of 128 with a scale and shift
                       each), CPU and CUDA; activations stay in float
    nf4                4-bit NormalFloat of the linear layers by bitsandbytes (blocks of 64, the
                       QLoRA format), CPU and CUDA

The quantized schemes need the `quant` extra (`pip install 'llm-eff[quant]'`). They quantize the
linear layers of the decoder and leave the embeddings and the output head in float, as
transformers' own integrations do: in a small model the embeddings are a large share of the
weights, so its compression rate is well below the format's (see `compression_rate`). GGUF
models carry their own quantization (read by `gguf_scheme`) and run as they are on the llama.cpp
engine; `quant=` on one of them applies to the transformers engine, which dequantizes the file
first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError

INSTALL_HINT = "pip install 'llm-eff[quant]'  (optimum-quanto and bitsandbytes)"


@dataclass(frozen=True)
class Scheme:
    """One value of `quant=`: its weight bits and the library that applies it ('' for a cast)."""

    name: str
    bits: int
    library: str
    description: str


SCHEMES = {
    s.name: s
    for s in (
        Scheme("fp32", 32, "", "float32 weights"),
        Scheme("bf16", 16, "", "bfloat16 weights"),
        Scheme("fp16", 16, "", "float16 weights"),
        Scheme("int8", 8, "optimum.quanto", "int8 weight-only, per output channel (quanto)"),
        Scheme("int4", 4, "optimum.quanto", "int4 weight-only, groups of 128 (quanto)"),
        Scheme("nf4", 4, "bitsandbytes", "4-bit NormalFloat, blocks of 64 (bitsandbytes)"),
    )
}
_OPTION = re.compile(r"^(?P<base>.+):quant=(?P<scheme>[^:]*)$")
KEEP_FLOAT = ("lm_head",)  # modules left in float (the output head, tied to the embeddings)


def split_quant(spec: str) -> tuple[str, str]:
    """(model string, scheme) of `MODEL:quant=SCHEME`; scheme '' when there is no option.

    UserError for an unknown scheme."""
    match = _OPTION.match(spec.strip())
    if match is None:
        return spec.strip(), ""
    scheme = match["scheme"].strip().lower()
    if scheme not in SCHEMES:
        raise UserError(
            f"unknown quantization '{match['scheme']}' in {spec!r}: quant= takes "
            + ", ".join(SCHEMES)
        )
    return match["base"].strip(), scheme


def check_available(scheme: str) -> None:
    """UserError when the library that applies `scheme` is not installed."""
    import importlib.util

    library = SCHEMES[scheme].library
    if library and importlib.util.find_spec(library.split(".")[0]) is None:
        raise UserError(f"quant={scheme} needs {library}: {INSTALL_HINT}")


def quantize(model: Any, scheme: str) -> Any:
    """`model` with its weights in `scheme` (in place where the library allows; returned)."""
    import torch

    if not scheme:
        return model
    check_available(scheme)
    if scheme in ("fp32", "bf16", "fp16"):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[scheme]
        return model.to(dtype)
    if scheme in ("int8", "int4"):
        from optimum.quanto import freeze, qint4, qint8
        from optimum.quanto import quantize as quanto_quantize

        quanto_quantize(
            model, weights=qint8 if scheme == "int8" else qint4, exclude=list(KEEP_FLOAT)
        )
        freeze(model)  # the float weights are replaced by their packed integer form
        return model
    return _to_nf4(model)


def grad_free(scheme: str) -> Any:
    """The context to generate under: inference mode, except for quanto's packed tensors,
    which cannot be used inside it (they are created as ordinary tensors), so no_grad."""
    import torch

    quanto = SCHEMES.get(scheme, SCHEMES["fp32"]).library == "optimum.quanto"
    return torch.no_grad() if quanto else torch.inference_mode()


def float_scheme(dtype: Any) -> str:
    """The cast scheme of a torch float dtype ('fp32', 'bf16', 'fp16'; else its name)."""
    name = str(dtype).removeprefix("torch.")
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(name, name)


def scheme_of(model: Any) -> str:
    """The scheme a loaded model's weights are in, read from its layers (so a model whose base
    was quantized, e.g. an adapter's, reports it too)."""
    for module in model.modules():
        qtype = getattr(module, "weight_qtype", None)  # optimum-quanto's QLinear
        if qtype is not None:
            return f"int{qtype.bits}"
        if type(module).__name__ == "Linear4bit":  # bitsandbytes
            return str(getattr(module.weight, "quant_type", "nf4"))
    return float_scheme(getattr(model, "dtype", "float32"))


def _to_nf4(model: Any) -> Any:
    """Every linear layer but the output head replaced by a bitsandbytes NF4 `Linear4bit`."""
    import bitsandbytes as bnb
    import torch
    from torch import nn

    device = next(model.parameters()).device
    compute = torch.bfloat16 if device.type == "cuda" else torch.float32
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] not in KEEP_FLOAT
    ]
    for name, linear in targets:
        layer = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            compute_dtype=compute,
            quant_type="nf4",
            device="meta",
        )
        layer.weight = bnb.nn.Params4bit(
            linear.weight.data.to(torch.float32), requires_grad=False, quant_type="nf4"
        )
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        layer = layer.to(device)  # Params4bit quantizes when it is moved to its device
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, layer)
    return model


def _storage_bytes(tensor: Any) -> int:
    """Bytes a tensor really holds: a quantized tensor subclass is the sum of its parts."""
    import torch

    if type(tensor) not in (torch.Tensor, torch.nn.Parameter) and hasattr(
        tensor, "__tensor_flatten__"
    ):
        names, _ = tensor.__tensor_flatten__()
        parts = [getattr(tensor, n) for n in names]
        return sum(_storage_bytes(p) for p in parts if p is not None)
    out = tensor.numel() * tensor.element_size()
    state = getattr(tensor, "quant_state", None)  # bitsandbytes 4-bit: scales beside the data
    if state is not None:
        out += sum(
            _storage_bytes(t) for t in (state.absmax, getattr(state, "code", None)) if t is not None
        )
    return out


def _weights(model: Any) -> list[Any]:
    """The model's parameters and buffers, each once (tied weights count once)."""
    from torch import nn

    unique = {id(t): t for t in model.state_dict(keep_vars=True).values()}.values()
    # a parameter's data is its tensor (quanto's packed one); bitsandbytes keeps its scales on
    # the 4-bit parameter itself
    return [
        t.data if isinstance(t, nn.Parameter) and not hasattr(t, "quant_state") else t
        for t in unique
    ]


def weight_bytes(model: Any) -> int:
    """Bytes the model's weights occupy as stored (packed integers and their scales included)."""
    return sum(_storage_bytes(t) for t in _weights(model))


def parameter_count(model: Any) -> int:
    """Weights of the model as it was trained (a 4-bit tensor counts its unpacked shape)."""
    import math

    total = 0
    for param in model.parameters():
        state = getattr(param, "quant_state", None)
        total += math.prod(state.shape) if state is not None else param.numel()
    return total


def compression_rate(stored_bytes: int, parameters: int) -> float:
    """The model's 16-bit size over its stored size (2.0 for fp32 weights counts as 0.5)."""
    return 2.0 * parameters / stored_bytes if stored_bytes else 0.0


def gguf_scheme(path: str | Path) -> str:
    """The quantization a GGUF file declares (e.g. 'gguf-Q4_1'); 'gguf' if it names none."""
    from gguf import GGUFReader, LlamaFileType

    field = GGUFReader(str(path)).fields.get("general.file_type")
    if field is None:
        return "gguf"
    try:
        kind = LlamaFileType(int(field.parts[field.data[0]][0]))
    except ValueError:
        return "gguf"
    return "gguf-" + kind.name.removeprefix("MOSTLY_")
