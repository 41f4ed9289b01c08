"""vLLM: the fast local backend on GPU machines (optional extra: `pip install llm-eff[vllm]`).

Token counts come from vLLM's outputs; cost is hardware time, as for `TransformersBackend`.
"""

from __future__ import annotations

import time

from llm_eff.backends.base import Chat, Completion, GenerationConfig, check_chats
from llm_eff.backends.calibration import Calibration, batch_price
from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
from llm_eff.core.types import Usage


class VLLMBackend:
    """A local model served by vLLM's offline `LLM` engine."""

    def __init__(
        self,
        model_path: str,
        name: str | None = None,
        hardware_dollars_per_hour: float = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
        calibration: Calibration | None = None,
        **engine_args: object,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise UserError(
                "the vLLM backend needs the extra: pip install 'llm-eff[vllm]'"
            ) from None
        self.name = name or model_path
        self.calibration = calibration  # stable prices (`llm-eff calibrate`); else wall time
        self.llm = LLM(model=model_path, **engine_args)
        self.hardware_dollars_per_hour = hardware_dollars_per_hour

    def generate(self, chats: list[Chat], config: GenerationConfig) -> list[list[Completion]]:
        """`config.n` completions per chat in one vLLM batch."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=config.n,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_new_tokens,
            stop=list(config.stop) or None,
            seed=config.seed,
        )
        start = time.perf_counter()
        outputs = self.llm.chat(check_chats(chats), params)
        wall = time.perf_counter() - start
        total = sum(
            len(o.prompt_token_ids) * config.n + sum(len(c.token_ids) for c in o.outputs)
            for o in outputs
        )
        rate = total / wall if wall else 0.0
        price = batch_price(self.hardware_dollars_per_hour, rate, self.calibration)
        results = []
        for o in outputs:
            group = []
            for c in o.outputs:
                usage = Usage(
                    prompt_tokens=len(o.prompt_token_ids),
                    completion_tokens=len(c.token_ids),
                    latency_s=wall,
                    model=self.name,
                )
                group.append(
                    Completion(c.text, usage, price.cost(usage), c.finish_reason or "stop")
                )
            results.append(group)
        return results
