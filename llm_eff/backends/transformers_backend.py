"""Local generation with transformers: batched, real token counts, latency, peak memory.

Cost is hardware time: the batch's wall time priced with `local_price` (hardware $/hour over
measured tokens/s). FLOPs are estimated as 2 x parameters x tokens processed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from llm_eff.backends.base import (
    Chat,
    Completion,
    GenerationConfig,
    ReportsDepth,
    chat_text,
    check_chats,
    peak_rss_bytes,
    truncate_at_stop,
)
from llm_eff.backends.calibration import Calibration, batch_price
from llm_eff.backends.efficiency import (
    EnergyMeter,
    compute_utilization,
    memory_capacity_bytes,
    shares,
    utilization,
)
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
from llm_eff.core.types import Usage
from llm_eff.models.quant import (
    compression_rate,
    grad_free,
    parameter_count,
    quantize,
    scheme_of,
    weight_bytes,
)
from llm_eff.models.registry import ModelRef, model_kinds


def load_local(ref: ModelRef) -> tuple[Any, Any]:
    """(model, tokenizer) for a local model reference, in eval mode, its weights in the
    reference's `quant` scheme."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    kind = model_kinds().get(ref.kind)
    if kind is not None:  # a technique's format (adapter, Dr.LLM, MoR): its owner loads it
        model, tok = kind.load(ref)
    elif ref.kind == "tiny":
        from llm_eff.models.tiny import tiny_llama

        model, tok = tiny_llama()
    elif ref.kind == "gguf":  # dequantized to dense weights at every load (slow for big files)
        gguf = Path(ref.path)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # the weights are dense now: without GGUF's quantizer marks, trl's Trainer (GRPO)
        # and save_pretrained take the model for the plain float model it is
        model.hf_quantizer.remove_quantization_config(model)
        model.config._is_quantized = False
    else:
        if ref.kind == "embedded":
            from llm_eff.models.embedded import embedded_model_dir

            path = str(embedded_model_dir())
        else:
            path = ref.path
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path)
    if ref.quant:
        model = quantize(model, ref.quant)
    model.eval()
    return model, tok


def _peak_memory_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return peak_rss_bytes()


def encode_chats(tokenizer: Any, chats: list[Chat]) -> Any:
    """Left-padded input tensors for chats, in the model's chat format if it has one."""
    if tokenizer.chat_template:
        texts = [
            tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            for chat in chats
        ]
    else:
        texts = [chat_text(chat) for chat in chats]
    tokenizer.padding_side = "left"  # decoder-only batching pads on the left
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def _depth_per_row(model: Any, rows: int) -> list[tuple[float | None, float]]:
    """(layers executed per token, share of full depth) per output row; full depth if unknown."""
    measured = model.depth_per_row() if isinstance(model, ReportsDepth) else []
    if len(measured) == rows:
        return list(measured)
    return [(None, 1.0)] * rows


class TransformersBackend:
    """A local HF causal LM behind the `Backend` protocol."""

    def __init__(
        self,
        ref: ModelRef,
        batch_size: int = 8,
        hardware_dollars_per_hour: float = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
        model: Any = None,
        tokenizer: Any = None,
        calibration: Calibration | None = None,
    ) -> None:
        import torch

        self.name = ref.name
        self.batch_size = batch_size
        self.hardware_dollars_per_hour = hardware_dollars_per_hour
        self.calibration = calibration  # stable prices (`llm-eff calibrate`); else wall time
        if model is None:
            model, tokenizer = load_local(ref)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model, tokenizer
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.n_params = parameter_count(self.model)
        self.dtype = str(getattr(self.model, "dtype", torch.float32)).removeprefix("torch.")
        self.quant = scheme_of(self.model)  # the weights' scheme, recorded in every usage
        self.compression_rate = compression_rate(weight_bytes(self.model), self.n_params)
        self.memory_capacity = memory_capacity_bytes(self.device)

    def generate(self, chats: list[Chat], config: GenerationConfig) -> list[list[Completion]]:
        """`config.n` completions per chat, generated in batches of `batch_size` chats."""
        chats = check_chats(chats)
        out: list[list[Completion]] = []
        for start in range(0, len(chats), self.batch_size):
            out.extend(self._generate_batch(chats[start : start + self.batch_size], config))
        return out

    def _generate_batch(
        self, chats: list[Chat], config: GenerationConfig
    ) -> list[list[Completion]]:
        import torch

        enc = encode_chats(self.tokenizer, chats).to(self.device)
        sample = config.temperature > 0
        # greedy answers are all alike (and transformers refuses n > 1 without sampling):
        # decode each prompt once and copy the answer n times
        copies = 1 if sample else config.n
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "do_sample": sample,
            "num_return_sequences": config.n // copies,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if config.stop:
            kwargs.update(stop_strings=list(config.stop), tokenizer=self.tokenizer)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        clock = _step_clock(self.model, kwargs)
        start = time.perf_counter()
        with EnergyMeter(self.device) as energy, grad_free(self.quant):
            generated = self.model.generate(**enc, **kwargs)
        wall = time.perf_counter() - start
        stamps = [t - start for t in clock.stamps] if clock is not None else []
        depth = _depth_per_row(self.model, len(chats) * config.n // copies)
        if copies > 1:
            generated = generated.repeat_interleave(copies, dim=0)
            depth = [row for row in depth for _ in range(copies)]
        prompt_len = enc["input_ids"].shape[1]
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        new = generated[:, prompt_len:]
        stop_ids = {self.tokenizer.pad_token_id, self.tokenizer.eos_token_id}
        lengths = []
        for row in new.tolist():
            n = next((i + 1 for i, t in enumerate(row) if t in stop_ids), len(row))
            lengths.append(n)
        total_tokens = (sum(prompt_tokens) * config.n + sum(lengths)) / copies  # processed
        rate = total_tokens / wall if wall else 0.0
        price = batch_price(self.hardware_dollars_per_hour, rate, self.calibration)
        peak = _peak_memory_bytes(self.device)
        work = [  # useful FLOPs of each answer: 2 x weights x tokens, at the depth it ran
            2.0 * self.n_params * depth[row][1] * (prompt_tokens[row // config.n] + lengths[row])
            for row in range(len(lengths))
        ]
        axes = {
            "quant": self.quant,
            "compression_rate": self.compression_rate,
            "memory_utilization": utilization(peak, self.memory_capacity),
            "compute_utilization": compute_utilization(
                sum(work) / copies, wall, self.device, self.dtype
            ),
        }
        joules = shares(energy.joules, work)  # the batch's energy, split as its work
        results: list[list[Completion]] = []
        for i in range(len(chats)):
            group = []
            for j in range(config.n):
                row = i * config.n + j
                text = self.tokenizer.decode(new[row][: lengths[row]], skip_special_tokens=True)
                layers = depth[row][0]
                usage = Usage(
                    prompt_tokens=int(prompt_tokens[i]),
                    completion_tokens=int(lengths[row]),
                    latency_s=wall,
                    model=self.name,
                    flops_estimate=work[row],
                    peak_memory_bytes=peak,
                    layers_executed=layers,
                    batch_tokens_per_s=rate,
                    energy_j=joules[row],
                    **axes,
                    **_token_times(stamps, lengths[row]),
                )
                finish = "length" if lengths[row] >= config.max_new_tokens else "stop"
                group.append(
                    Completion(
                        truncate_at_stop(text, config.stop), usage, price.cost(usage), finish
                    )
                )
            results.append(group)
        return results


def _step_clock(model: Any, kwargs: dict[str, Any]) -> Any:
    """A logits processor that timestamps every generation step, added to `kwargs` (None for
    a model whose `generate` is not transformers' own, e.g. Dr.LLM's routed decoding)."""
    from transformers import GenerationMixin, LogitsProcessor, LogitsProcessorList

    if not isinstance(model, GenerationMixin):
        return None

    class StepClock(LogitsProcessor):
        """Records when each step's logits are ready: step k's token is known then."""

        def __init__(self) -> None:
            self.stamps: list[float] = []

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            self.stamps.append(time.perf_counter())
            return scores

    clock = StepClock()
    kwargs["logits_processor"] = LogitsProcessorList([clock])
    return clock


def _token_times(stamps: list[float], tokens: int) -> dict[str, float | None]:
    """ttft_s and tpot_s of an answer of `tokens` tokens from the batch's step times (seconds
    since the request): its first token came with the first step, its last with step
    `tokens`; a batch decodes in lockstep, so a short answer's TPOT is the batch's pace."""
    if not stamps or tokens < 1:
        return {}
    last = stamps[min(tokens, len(stamps)) - 1]
    tpot = (last - stamps[0]) / (tokens - 1) if tokens > 1 else None
    return {"ttft_s": stamps[0], "tpot_s": tpot}
