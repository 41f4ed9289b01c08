"""Train small MoR and vanilla Llama models from scratch at equal training FLOPs, with accelerate.

Corpus: the Python standard library's own source (offline on every machine), split by file into
train and validation, tokenized once and cached as .npy. FLOPs are counted per step from the
layers each token actually ran: 6 x (layer parameters x layer applications + LM head + routers)
per token, plus attention scores (12 x hidden x T/2 per layer application), so a model that
sends fewer tokens through its recursions trains on more tokens for the same budget.
"""

from __future__ import annotations

import json
import math
import sysconfig
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llm_eff.backends.base import ReportsDepth

SKIP_DIRS = {"site-packages", "test", "tests", "idle_test"}


def stdlib_files() -> list[Path]:
    """The standard library's .py files (tests and site-packages left out), in a stable order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(f for f in root.rglob("*.py") if not SKIP_DIRS & set(f.relative_to(root).parts))


def is_validation(path: Path, share: float = 0.05) -> bool:
    """Whether a file belongs to the validation split (a stable hash of its name)."""
    return zlib.crc32(path.name.encode()) % 10_000 < share * 10_000


def build_corpus(cache_dir: Path, tokenizer: Any = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(train ids, validation ids, vocab size), tokenized once and cached in `cache_dir`."""
    cache_dir = Path(cache_dir)
    meta = cache_dir / "corpus.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        load = lambda name: np.load(cache_dir / f"{name}.npy")  # noqa: E731
        return load("train"), load("val"), int(info["vocab_size"])
    if tokenizer is None:
        from transformers import AutoTokenizer

        from llm_eff.models.embedded import embedded_model_dir

        tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    splits: dict[str, list[int]] = {"train": [], "val": []}
    for path in stdlib_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        splits["val" if is_validation(path) else "train"].extend(ids)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if len(tokenizer) <= 65536 else np.int32
    arrays = {k: np.asarray(v, dtype=dtype) for k, v in splits.items()}
    for name, arr in arrays.items():
        np.save(cache_dir / f"{name}.npy", arr)
    meta.write_text(json.dumps({"vocab_size": len(tokenizer), "files": len(stdlib_files())}))
    return arrays["train"], arrays["val"], len(tokenizer)


@dataclass(frozen=True)
class ModelSpec:
    """One model of a comparison: a vanilla Llama or an MoR model, and its shape."""

    name: str
    kind: str  # "llama" or "mor"
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    recursions: int = 1
    router: str = "expert"
    kv_cache: str = "recursion"


def make_model(spec: ModelSpec, vocab_size: int, seed: int = 0) -> torch.nn.Module:
    """A freshly initialised model for `spec` (tied input/output embeddings for both kinds)."""
    common = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    if spec.kind == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        return LlamaForCausalLM(LlamaConfig(**common, attn_implementation="sdpa"))
    from llm_eff.mor import MoRConfig, MoRForCausalLM

    config = MoRConfig(
        **common, num_recursions=spec.recursions, router=spec.router, kv_cache=spec.kv_cache
    )
    return MoRForCausalLM(config)


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Total parameters, and parameters outside the embedding table."""
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    return {"total": total, "non_embedding": total - embed}


def _layer_params(model: torch.nn.Module) -> int:
    layer = next(
        m for m in model.modules() if type(m).__name__ in ("MoRLayer", "LlamaDecoderLayer")
    )
    return sum(p.numel() for p in layer.parameters())


def train_flops_per_token(model: torch.nn.Module, layers_run: float, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward) given the mean layer applications."""
    cfg = model.config
    routers = getattr(getattr(model, "model", None), "routers", None)
    router_params = sum(p.numel() for p in routers.parameters()) if routers is not None else 0
    head = cfg.hidden_size * cfg.vocab_size
    weights = _layer_params(model) * layers_run + head + router_params
    attention = 2 * cfg.hidden_size * seq_len * layers_run  # QK^T and AV over ~T/2 keys, forward
    return 6 * weights + 3 * attention


def _windows(ids: np.ndarray, starts: np.ndarray, seq_len: int, device: Any) -> torch.Tensor:
    rows = np.stack([ids[s : s + seq_len].astype(np.int64) for s in starts])
    return torch.from_numpy(rows).to(device)


@dataclass
class TrainResult:
    """What one training run spent and reached."""

    steps: int
    tokens: int
    flops: float
    seconds: float
    mean_layers: float
    final_loss: float


def train_to_budget(
    model: torch.nn.Module,
    train_ids: np.ndarray,
    flops_budget: float,
    *,
    batch_size: int,
    seq_len: int,
    lr: float = 3e-3,
    warmup_share: float = 0.05,
    seed: int = 0,
    mixed_precision: str = "no",
    on_step: Callable[[float], None] | None = None,
    max_steps: int | None = None,
) -> TrainResult:
    """Train with AdamW and a warmup + cosine schedule until `flops_budget` is spent (or, with
    `max_steps`, until that many steps ran, whichever comes first)."""
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision=mixed_precision)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    # FLOPs per token are linear in the layers run: work out the two terms once, not per step
    fixed = train_flops_per_token(model, 0.0, seq_len)
    per_layer = train_flops_per_token(model, 1.0, seq_len) - fixed
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    rng = np.random.default_rng(seed)
    spent, step, tokens, layer_sum, loss_value = 0.0, 0, 0, 0.0, float("nan")
    start = time.perf_counter()

    def done() -> float:
        return max(spent / flops_budget, step / max_steps if max_steps else 0.0)

    while done() < 1.0:
        progress = done()
        scale = (
            progress / warmup_share
            if progress < warmup_share
            else 0.5 * (1 + math.cos(math.pi * (progress - warmup_share) / (1 - warmup_share)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr * max(scale, 0.02)
        starts = rng.integers(0, len(train_ids) - seq_len, size=batch_size)
        batch = _windows(train_ids, starts, seq_len, accelerator.device)
        with accelerator.autocast():
            out = model(input_ids=batch, labels=batch, use_cache=False)
        accelerator.backward(out.loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        layers = _mean_layers(out, model)
        spent += (fixed + per_layer * layers) * batch.numel()
        step, tokens, layer_sum = step + 1, tokens + batch.numel(), layer_sum + layers
        lm = getattr(out, "lm_loss", None)
        loss_value = float((lm if lm is not None else out.loss).detach())
        if on_step is not None:
            on_step(min(done(), 1.0))
    seconds = time.perf_counter() - start
    return TrainResult(step, tokens, spent, seconds, layer_sum / max(step, 1), loss_value)


def _mean_layers(out: Any, model: torch.nn.Module) -> float:
    layers = getattr(out, "layers_executed", None)
    if layers is None:
        return float(model.config.num_hidden_layers)
    return float(layers.float().mean())


@torch.no_grad()
def validation_perplexity(
    model: torch.nn.Module, val_ids: np.ndarray, *, seq_len: int, batches: int, batch_size: int
) -> tuple[float, float]:
    """(perplexity, mean layers per token) on the first non-overlapping validation windows."""
    model.eval()
    device = next(model.parameters()).device
    count = min(batches * batch_size, (len(val_ids) - 1) // seq_len)
    starts = np.arange(count) * seq_len
    total, n, layers = 0.0, 0, 0.0
    for i in range(0, count, batch_size):
        batch = _windows(val_ids, starts[i : i + batch_size], seq_len, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model(input_ids=batch, labels=batch, use_cache=False)
        lm = getattr(out, "lm_loss", None)
        total += float(lm if lm is not None else out.loss) * batch.shape[0]
        n += batch.shape[0]
        layers += _mean_layers(out, model) * batch.shape[0]
    return math.exp(total / n), layers / n


@torch.no_grad()
def generation_speed(
    model: torch.nn.Module, prompts: torch.Tensor, new_tokens: int, repeats: int = 2
) -> tuple[float, float]:
    """(new tokens per second, mean layers per token) of greedy `generate()` on `prompts`."""
    model.eval()
    kwargs = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    model.generate(prompts, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
    best = math.inf
    for _ in range(repeats):
        if prompts.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(prompts, **kwargs)
        if prompts.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    layers = [r[0] for r in model.depth_per_row()] if isinstance(model, ReportsDepth) else []
    mean_layers = sum(layers) / len(layers) if layers else float(model.config.num_hidden_layers)
    return prompts.shape[0] * new_tokens / best, mean_layers


def result_row(spec: ModelSpec, **numbers: Any) -> dict[str, Any]:
    """One printable/JSON row: the spec's fields and the measured numbers."""
    return {**asdict(spec), **numbers}
