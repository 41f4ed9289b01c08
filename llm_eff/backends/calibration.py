"""Stable prices for local models: each model's throughput measured once per machine, on a
quiet run, then used to price every generation by its token counts alone.

Priced from the wall time of each batch (the default), a local model's dollars follow whatever
else the machine is doing: the same attempts have cost 13x more on a busy machine than on an
idle one. `llm-eff calibrate MODEL` instead measures, on this machine, engine and batch size,
the model's prefill rate (prompt tokens/s: a batch asked for one new token) and decode rate
(new tokens/s after the first: the same batch asked for `new_tokens`), takes the best of
`rounds` runs (the quietest), and stores them under the cache folder. Backends built for that
model, engine and batch size then price a call as

    prompt tokens x X / (3600 x prefill rate) + completion tokens x X / (3600 x decode rate)

with X the hardware price in $/hour, so a rerun of the same eval costs the same dollars
however loaded the machine is; wall time stays what latency reports. The machine is named by
its host name, CPU model and core count (or GPU), so a calibration never prices another
machine's runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.core.prices import Price, local_price

COUNT_PROMPT = "Count from {start} to {end}, one number per line, and nothing else."


@dataclass(frozen=True)
class Calibration:
    """A model's measured throughput on one machine, engine and batch size."""

    model: str
    engine: str
    batch_size: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    machine: str
    measured_at: str
    rounds: int = 1

    def price(self, hardware_dollars_per_hour: float) -> Price:
        """$/1M prompt and completion tokens at this throughput (see the module)."""
        x = hardware_dollars_per_hour
        return Price(
            x / (3600 * self.prefill_tokens_per_s) * 1e6,
            x / (3600 * self.decode_tokens_per_s) * 1e6,
            f"calibrated@${x:g}/h",
        )


@functools.lru_cache(maxsize=1)  # constant for the process; read once, not per backend
def machine_id() -> str:
    """This machine's name in calibrations: host, CPU model and cores (and the GPU if any)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{platform.node()}: {cpu}, {len(os.sched_getaffinity(0))} cores{gpu}"


def _path(model: str, engine: str, batch_size: int, machine: str | None = None) -> Path:
    from llm_eff.models.embedded import cache_root

    digest = hashlib.sha256((machine or machine_id()).encode()).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_")[:80]
    return cache_root() / "calibration" / digest / f"{slug}-{engine}-b{batch_size}.json"


def find_calibration(model: str, engine: str, batch_size: int) -> Calibration | None:
    """This machine's calibration of `model` on `engine` at `batch_size`, if one was made."""
    path = _path(model, engine, batch_size)
    try:
        data = json.loads(path.read_text())
        found = Calibration(**data)
    except (OSError, ValueError, TypeError):
        return None
    usable = found.prefill_tokens_per_s > 0 and found.decode_tokens_per_s > 0
    return found if usable and found.machine == machine_id() else None


def save_calibration(calibration: Calibration) -> Path:
    """Store a calibration where `find_calibration` looks; returns the file."""
    path = _path(calibration.model, calibration.engine, calibration.batch_size, calibration.machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(calibration), indent=1) + "\n")
    tmp.replace(path)
    return path


def calibrate(
    backend: Any,
    model: str,
    engine: str,
    batch_size: int,
    rounds: int = 3,
    new_tokens: int = 64,
    progress: Any = None,
) -> Calibration:
    """Measure `backend`'s prefill and decode rates on batches of `batch_size` counting
    prompts, best of `rounds`. Every call has prompts of its own, so no prompt cache helps: the
    first call (one new token each) times prefill; the second decodes `new_tokens` and its
    decoding time is its wall time less its prompts' prefill at the rate just measured."""
    from llm_eff.backends.base import GenerationConfig, user_chat

    if rounds < 1 or new_tokens < 2 or batch_size < 1:
        raise UserError("calibrate: rounds >= 1, new tokens >= 2 and batch size >= 1")
    prefill_best = decode_best = 0.0

    def batch(call: int) -> list[Any]:
        return [
            user_chat(COUNT_PROMPT.format(start=7 * (call * batch_size + i) + 1, end=10_000))
            for i in range(batch_size)
        ]

    backend.generate(batch(2 * rounds), GenerationConfig(max_new_tokens=2))  # warm-up, untimed
    for r in range(rounds):
        start = time.perf_counter()
        first = backend.generate(batch(2 * r), GenerationConfig(max_new_tokens=1))
        prefill_s = time.perf_counter() - start
        start = time.perf_counter()
        full = backend.generate(batch(2 * r + 1), GenerationConfig(max_new_tokens=new_tokens))
        full_s = time.perf_counter() - start
        prefill_rate = sum(g[0].usage.prompt_tokens for g in first) / prefill_s
        decoded = sum(g[0].usage.completion_tokens for g in full) - batch_size
        if decoded < batch_size:
            raise UserError(f"calibrate: {model} stopped at once; it cannot be timed this way")
        full_prefill_s = sum(g[0].usage.prompt_tokens for g in full) / prefill_rate
        decode_rate = decoded / max(full_s - full_prefill_s, 1e-9)
        prefill_best = max(prefill_best, prefill_rate)
        decode_best = max(decode_best, decode_rate)
        if progress is not None:
            progress(r + 1, rounds, prefill_rate, decode_rate)
    return Calibration(
        model=model,
        engine=engine,
        batch_size=batch_size,
        prefill_tokens_per_s=prefill_best,
        decode_tokens_per_s=decode_best,
        machine=machine_id(),
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rounds=rounds,
    )


def batch_price(
    hardware_dollars_per_hour: float, tokens_per_s: float, calibration: Calibration | None
) -> Price:
    """A local batch's price: from the calibration when there is one, else from the batch's
    own measured throughput (`local_price`)."""
    if calibration is not None:
        return calibration.price(hardware_dollars_per_hour)
    return local_price(hardware_dollars_per_hour, tokens_per_s)
