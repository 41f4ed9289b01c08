"""Train, save, reload and evaluate one method: what `llm-eff finetune` runs.

The loop is a plain accelerate loop (AdamW, constant learning rate after a short warm-up), so
it runs on CPU, one GPU, or several through `accelerate launch`. It measures per-step time,
tokens/s and peak training memory; after saving, the adapter is reloaded onto a fresh copy of
the base model, its logits are checked against the trained model's, and the reloaded model is
scored on held-out examples (exact match, or SQL match for text-to-SQL) and by held-out loss.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.peft.api import load, parameter_counts, prepare, save, weights_size
from llm_eff.peft.config import MethodConfig
from llm_eff.peft.data import Example, batches, load_examples, prompt_text, tokenize
from llm_eff.peft.loss import training_loss
from llm_eff.peft.memory import PeakMemory

RUN_FILE = "llm_eff_finetune.json"


@dataclass
class TrainConfig:
    """Optimisation and evaluation settings (lr None: the method's default)."""

    steps: int = 100
    batch_size: int = 8
    lr: float | None = None
    max_length: int = 512
    pack: bool = False
    warmup_steps: int = 5
    seed: int = 0
    eval_limit: int = 50
    eval_fraction: float = 0.1
    metric: str = "exact"
    max_new_tokens: int = 128

    def learning_rate(self, method: str) -> float:
        """The configured rate, or the method's default."""
        from llm_eff.peft.methods import get_method

        return self.lr if self.lr is not None else get_method(method).default_lr


@dataclass
class TrainStats:
    """What the training loop measured."""

    losses: list[float]
    step_seconds: list[float]
    tokens: int
    peak_bytes: int
    device: str

    @property
    def median_step_s(self) -> float:
        """Median step time (the first, warm-up step included only when it is the only one)."""
        times = self.step_seconds[1:] or self.step_seconds
        return statistics.median(times) if times else 0.0

    @property
    def tokens_per_s(self) -> float:
        """Training tokens (padding excluded) per second of step time."""
        total = sum(self.step_seconds)
        return self.tokens / total if total else 0.0


def train_loop(
    model: Any,
    data: Iterable[dict[str, Any]],
    lr: float,
    warmup_steps: int = 5,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainStats:
    """Train `model`'s trainable parameters on the batches of `data` (one optimiser step
    each) with accelerate; returns losses, step times, token count and peak memory."""
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / max(1, warmup_steps))
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    device = str(accelerator.device)
    losses, times, tokens = [], [], 0
    with PeakMemory(device) as peak:
        for step, batch in enumerate(data):
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            start = time.perf_counter()
            loss = training_loss(model, batch)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(loss.detach())
            if accelerator.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            losses.append(value)
            tokens += int(batch["attention_mask"].sum())
            if on_step:
                on_step(step + 1, value)
    return TrainStats(losses, times, tokens, peak.peak_bytes, device)


def heldout_loss(model: Any, rows: list[tuple[list[int], list[int]]], pad_id: int) -> float:
    """Mean next-token loss over `rows` (completion tokens only)."""
    import torch

    if not rows:
        return float("nan")
    device = next(model.parameters()).device
    model.eval()
    total = 0.0
    with torch.no_grad():
        for batch in batches(rows, 1, pad_id, len(rows), seed=0):
            batch = {k: v.to(device) for k, v in batch.items()}
            total += float(model(**batch).loss)
    return total / len(rows)


def generate_answer(model: Any, tokenizer: Any, example: Example, max_new_tokens: int) -> str:
    """Greedy answer of `model` to the example's prompt."""
    import torch

    device = next(model.parameters()).device
    ids = tokenizer(
        prompt_text(tokenizer, example.messages), return_tensors="pt", add_special_tokens=False
    )["input_ids"].to(device)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def score(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    metric: str,
    max_new_tokens: int,
    on_item: Callable[[], None] | None = None,
) -> float:
    """Fraction of `examples` whose greedy answer matches the reference under `metric`."""
    from llm_eff.core.match import SCORERS

    if metric not in SCORERS:
        raise UserError(f"unknown metric '{metric}': use {', '.join(SCORERS)}")
    if not examples:
        return float("nan")
    hits = 0
    for example in examples:
        answer = generate_answer(model, tokenizer, example, max_new_tokens)
        hits += SCORERS[metric](answer, example.completion)
        if on_item:
            on_item()
    return hits / len(examples)


def split_eval(
    examples: list[Example], eval_examples: list[Example] | None, fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, eval): the given eval set, else a held-out `fraction` of the data."""
    if eval_examples is not None:
        return examples, eval_examples
    if len(examples) < 2 or fraction <= 0:
        return examples, []
    shuffled = examples[:]
    random.Random(seed).shuffle(shuffled)
    n_eval = max(1, int(len(shuffled) * fraction))
    return shuffled[n_eval:], shuffled[:n_eval]


def prepare_out_dir(out: Path, overwrite: bool) -> Path:
    """A fresh temporary sibling of `out` to write into (renamed over `out` at the end)."""
    if out.exists() and not overwrite:
        raise UserError(f"output directory exists: {out} (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{time.time_ns()}"
    tmp.mkdir()
    return tmp


def commit_out_dir(tmp: Path, out: Path) -> None:
    """Move the finished output into place, replacing an older one."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{time.time_ns()}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def load_base(model_spec: str, method: str) -> tuple[Any, Any]:
    """(model, tokenizer) for a `--model` string; 4-bit for qlora."""
    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.models import parse_model

    ref = parse_model(model_spec)
    if not ref.is_local:
        raise UserError(f"cannot fine-tune an API model ({model_spec}); use a local model")
    from llm_eff.peft.methods import get_method

    if not get_method(method).quantized_base:
        return load_local(ref)
    from transformers import AutoModelForCausalLM

    from llm_eff.peft.lora import check_qlora, quantization_config

    check_qlora()
    model, tok = load_local(ref)
    path = ref.path or model.name_or_path
    del model
    quantized = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=quantization_config(), device_map={"": 0}
    )
    return quantized, tok


def _logits_match(a: Any, b: Any, batch: dict[str, Any]) -> bool:
    import torch

    with torch.no_grad():
        a.eval()
        b.eval()
        device = next(a.parameters()).device
        inputs = {k: v[:1].to(device) for k, v in batch.items() if k != "labels"}
        return torch.equal(a(**inputs).logits, b.to(device)(**inputs).logits)


def finetune(
    model_spec: str,
    data: str | Path,
    out: str | Path,
    method: MethodConfig,
    train: TrainConfig | None = None,
    eval_data: str | Path | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Train `method` on `data`, save to `out`, reload, evaluate; returns the table row.

    `progress(phase, done, total)` is called as training steps and scored examples finish.
    """
    import torch

    train = train or TrainConfig()
    out = Path(out)
    examples = load_examples(data)
    given_eval = load_examples(eval_data) if eval_data else None
    train_examples, eval_examples = split_eval(
        examples, given_eval, train.eval_fraction, train.seed
    )
    from llm_eff.core.match import SCORERS

    if train.metric not in SCORERS:
        raise UserError(f"unknown metric '{train.metric}': use {', '.join(SCORERS)}")
    tmp = prepare_out_dir(out, overwrite)
    try:
        torch.manual_seed(train.seed)
        base, tok = load_base(model_spec, method.method)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        rows = [tokenize(tok, ex, train.max_length) for ex in train_examples]
        model = prepare(base, method)
        trainable, total = parameter_counts(model)
        stats = train_loop(
            model,
            batches(
                rows,
                train.batch_size,
                pad_id,
                train.steps,
                train.seed,
                train.max_length if train.pack else None,
            ),
            train.learning_rate(method.method),
            train.warmup_steps,
            (lambda step, _loss: progress("train", step, train.steps)) if progress else None,
        )
        model = getattr(model, "module", model)
        save(model, tmp, method, base_model=model_spec)
        tok.save_pretrained(str(tmp))
        fresh, _ = load_base(model_spec, method.method)
        reloaded = load(fresh, tmp)
        probe = next(batches(rows, 1, pad_id, 1, train.seed))
        exact = _logits_match(model, reloaded, probe)
        del model
        eval_rows = [tokenize(tok, ex, train.max_length) for ex in eval_examples]
        scored = eval_examples[: train.eval_limit]
        done = [0]

        def tick() -> None:
            done[0] += 1
            if progress:
                progress("score", done[0], len(scored))

        row = {
            "method": method.method,
            "model": model_spec,
            "trainable_params": trainable,
            "total_params": total,
            "peak_train_mb": round(stats.peak_bytes / 2**20, 1),
            "step_s": round(stats.median_step_s, 3),
            "tokens_per_s": round(stats.tokens_per_s, 1),
            "adapter_bytes": weights_size(tmp),
            "score": score(reloaded, tok, scored, train.metric, train.max_new_tokens, tick),
            "metric": train.metric,
            "n_scored": len(scored),
            "heldout_loss": round(heldout_loss(reloaded, eval_rows, pad_id), 4),
            "final_train_loss": round(stats.losses[-1], 4),
            "reload_exact": exact,
            "steps": train.steps,
            "batch_size": train.batch_size,
            "max_length": train.max_length,
            "device": stats.device,
            "out": str(out),
        }
        run = {"row": row, "method": method.to_dict(), "train": asdict(train), "data": str(data)}
        (tmp / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
        commit_out_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return row
