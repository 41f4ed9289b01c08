"""llama.cpp: the fast CPU engine for GGUF models (optional extra: `pip install llm-eff[llamacpp]`).

It runs on `xllamacpp`, a prebuilt wheel (MIT) that embeds llama.cpp's server, with no build
step; the server runs in a child process of its own (`llamacpp_server`: PyTorch's OpenMP team
in the same process slowed its decoding 2.5x). Chats are answered by the server's
chat-completions endpoint, so each GGUF's own chat template applies; `batch_size` parallel
slots decode concurrently (continuous batching), fed from a thread pool. n samples are n
requests with seeds `seed + j` (greedy decodes once and copies the answer n times, as
`TransformersBackend` does). Token counts and timings come from the server's own reply. The
server listens on a loopback port with a random API key, so other local processes cannot use
it. Cost is hardware time, as for every local model: $/hour over the tokens/s measured for the
batch.
"""

from __future__ import annotations

import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from llm_eff.backends.base import Chat, Completion, GenerationConfig, check_chats, peak_rss_bytes
from llm_eff.backends.calibration import Calibration, batch_price
from llm_eff.backends.efficiency import (
    EnergyMeter,
    compute_utilization,
    memory_capacity_bytes,
    shares,
    utilization,
)
from llm_eff.backends.llamacpp_server import LlamaCppProcess
from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
from llm_eff.core.types import Usage
from llm_eff.models.quant import compression_rate, gguf_scheme

INSTALL_HINT = "pip install 'llm-eff[llamacpp]'  (the xllamacpp wheel)"
DEFAULT_CONTEXT = 4096  # tokens of prompt + answer per parallel slot


def available() -> bool:
    """Whether the llama.cpp engine (xllamacpp) is installed."""
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


def gguf_parameters(path: str | Path) -> int:
    """The number of weights in a GGUF file (from its tensor table; nothing is loaded)."""
    from gguf import GGUFReader

    return int(sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors))


class LlamaCppBackend:
    """A GGUF model served by llama.cpp (a child process) behind the `Backend` protocol."""

    def __init__(
        self,
        gguf: str | Path,
        name: str | None = None,
        batch_size: int = 8,
        hardware_dollars_per_hour: float = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
        context: int = DEFAULT_CONTEXT,
        threads: int | None = None,
        calibration: Calibration | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if not available():
            raise UserError(f"the llama.cpp engine is not installed: {INSTALL_HINT}")
        path = Path(gguf)
        if not path.is_file():
            raise UserError(f"no GGUF file at {path}")
        self.name = name or path.stem
        self.batch_size = max(1, batch_size)
        self.hardware_dollars_per_hour = hardware_dollars_per_hour
        self.calibration = calibration  # stable prices (`llm-eff calibrate`); else wall time
        self.server = LlamaCppProcess(
            path,
            self.name,
            parallel=self.batch_size,
            context=context,
            threads=threads or len(os.sched_getaffinity(0)),
            max_tokens=max_tokens,
        )
        self.n_params = gguf_parameters(path)
        self.quant = gguf_scheme(path)  # e.g. gguf-Q4_1: the file's own quantization
        self.compression_rate = compression_rate(path.stat().st_size, self.n_params)
        self.memory_capacity = memory_capacity_bytes("cpu")

    def _request(self, chat: Chat, config: GenerationConfig, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": chat,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "top_k": 0,  # plain temperature / top-p sampling, as the other backends do
            "min_p": 0.0,
        }
        if config.stop:
            body["stop"] = list(config.stop)
        if seed is not None:
            body["seed"] = seed
        start = time.perf_counter()
        reply = self.server.chat(body)
        reply["_wall"] = time.perf_counter() - start
        return reply

    def generate(self, chats: list[Chat], config: GenerationConfig) -> list[list[Completion]]:
        """`config.n` completions per chat, decoded `batch_size` at a time in parallel slots."""
        chats = check_chats(chats)
        sample = config.temperature > 0
        draws = config.n if sample else 1
        jobs = [(i, j) for i in range(len(chats)) for j in range(draws)]

        base = config.seed if config.seed is not None else secrets.randbelow(2**31)

        def seed(j: int) -> int | None:
            return base + j if sample else None

        start = time.perf_counter()
        with EnergyMeter("cpu") as energy, ThreadPoolExecutor(self.batch_size) as pool:
            replies = list(
                pool.map(lambda job: self._request(chats[job[0]], config, seed(job[1])), jobs)
            )
        wall = time.perf_counter() - start
        processed = [_tokens(r) for r in replies]
        rate = sum(processed) / wall if wall else 0.0
        price = batch_price(self.hardware_dollars_per_hour, rate, self.calibration)
        peak = peak_rss_bytes() + self.server.peak_rss_bytes()  # this process and the server
        axes = {
            "batch_tokens_per_s": rate,
            "quant": self.quant,
            "compression_rate": self.compression_rate,
            "memory_utilization": utilization(peak, self.memory_capacity),
            # llama.cpp's quantized kernels against the CPU's float32 matmul peak
            "compute_utilization": compute_utilization(
                2.0 * self.n_params * sum(processed), wall, "cpu", "float32"
            ),
        }
        joules = shares(energy.joules, [float(t) for t in processed])
        copies = 1 if sample else config.n  # greedy: one decode, n equal answers
        out: list[list[Completion]] = [[] for _ in chats]
        for (i, _), reply, energy_j in zip(jobs, replies, joules, strict=True):
            completion = self._completion(reply, peak, price)
            share = None if energy_j is None else energy_j / copies
            completion.usage = replace(completion.usage, energy_j=share, **axes)
            out[i].extend(
                replace(completion, usage=replace(completion.usage)) for _ in range(copies)
            )
        return out

    def _completion(self, reply: dict[str, Any], peak: int, price: Any) -> Completion:
        error = reply.get("error")
        if error or not reply.get("choices"):
            message = error.get("message") if isinstance(error, dict) else str(error)
            return Completion(
                "",
                Usage(model=self.name),
                finish_reason="error",
                details={"failure": f"llama.cpp: {message}"},
            )
        choice = reply["choices"][0]
        used = reply.get("usage") or {}
        prompt, completion = (
            int(used.get("prompt_tokens", 0)),
            int(used.get("completion_tokens", 0)),
        )
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=int((used.get("prompt_tokens_details") or {}).get("cached_tokens", 0)),
            latency_s=float(reply["_wall"]),
            model=self.name,
            flops_estimate=2.0 * self.n_params * (prompt + completion),
            peak_memory_bytes=peak,
            **_token_times(reply),
        )
        text = (choice.get("message") or {}).get("content") or ""
        return Completion(text, usage, price.cost(usage), choice.get("finish_reason") or "stop")


def _tokens(reply: dict[str, Any]) -> int:
    used = reply.get("usage") or {}
    return int(used.get("prompt_tokens", 0)) + int(used.get("completion_tokens", 0))


def _token_times(reply: dict[str, Any]) -> dict[str, float]:
    """ttft_s and tpot_s from llama.cpp's own timings: the first token came once the request's
    wait and prompt were done (its wall time less the decoding time), then one token per
    `predicted_per_token_ms`."""
    timings = reply.get("timings")
    if not isinstance(timings, dict) or "predicted_ms" not in timings:
        return {}
    out = {"ttft_s": max(float(reply["_wall"]) - float(timings["predicted_ms"]) / 1000, 0.0)}
    if timings.get("predicted_n", 0) > 1 and timings.get("predicted_per_token_ms") is not None:
        out["tpot_s"] = float(timings["predicted_per_token_ms"]) / 1000
    return out
