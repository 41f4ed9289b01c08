"""Any API model through LiteLLM (OpenAI, Anthropic, ... or an OpenAI-compatible `api_base`).

Usage comes from the provider's response; dollars from LiteLLM's `completion_cost`, falling
back to the cost map. With n > 1 choices in one response, prompt and completion tokens and the
cost are split evenly across the choices.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_eff.backends.base import Chat, Completion, GenerationConfig, check_chats
from llm_eff.core.errors import BackendError, UserError
from llm_eff.core.prices import api_price
from llm_eff.core.types import Cost, Usage

LOCAL_SERVER_KEY = "sk-no-key-required"


def _litellm() -> Any:
    from llm_eff.core.prices import load_litellm

    return load_litellm()


def check_api_key(model: str, api_base: str | None = None, api_key: str | None = None) -> None:
    """UserError naming the environment variable(s) when the model's API key is missing."""
    if api_key or api_base:
        return
    env = _litellm().validate_environment(model=model)
    missing = env.get("missing_keys") or []
    if missing:
        raise UserError(f"missing API key for {model}: set {', '.join(missing)}")


class LiteLLMBackend:
    """An API model behind the `Backend` protocol, calls made concurrently."""

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 2,
        concurrency: int = 8,
    ) -> None:
        check_api_key(model, api_base, api_key)
        if api_base and not api_key:
            api_key = LOCAL_SERVER_KEY  # OpenAI-compatible local servers accept any key
        self.name = model
        self.model = model
        self.api_base, self.api_key = api_base, api_key
        self.timeout_s, self.retries, self.concurrency = timeout_s, retries, concurrency
        self.price = api_price(model)

    def _one(self, chat: Chat, config: GenerationConfig) -> list[Completion]:
        litellm = _litellm()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": chat,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "n": config.n,
            "timeout": self.timeout_s,
            "num_retries": self.retries,
        }
        if config.top_p != 1.0:
            kwargs["top_p"] = config.top_p
        if config.stop:
            kwargs["stop"] = list(config.stop)
        if config.seed is not None:
            kwargs["seed"] = config.seed
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        start = time.perf_counter()
        try:
            response = litellm.completion(**kwargs)
        except litellm.AuthenticationError as exc:
            raise UserError(f"{self.model}: authentication failed ({exc.message})") from None
        except litellm.NotFoundError as exc:
            raise UserError(f"{self.model}: model not found ({exc.message})") from None
        except Exception as exc:  # noqa: BLE001 - network and provider errors
            raise BackendError(f"{self.model}: {exc}") from exc
        wall = time.perf_counter() - start
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0) if details else 0
        try:
            dollars, source = (
                float(litellm.completion_cost(completion_response=response)),
                "litellm",
            )
        except Exception:  # noqa: BLE001 - unknown model in the cost map
            whole = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            cost = self.price.cost(whole) if self.price else Cost(0.0, "unpriced")
            dollars, source = cost.dollars, cost.source
        choices = response.choices or []
        k = max(len(choices), 1)
        return [
            Completion(
                text=choice.message.content or "",
                usage=Usage(
                    prompt_tokens=prompt_tokens // k,
                    completion_tokens=completion_tokens // k,
                    cached_tokens=cached // k,
                    latency_s=wall,
                    model=self.model,
                ),
                cost=Cost(dollars / k, source),
                finish_reason=choice.finish_reason or "stop",
            )
            for choice in choices
        ]

    def generate(self, chats: list[Chat], config: GenerationConfig) -> list[list[Completion]]:
        """`config.n` completions per chat; chats are sent concurrently."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda c: self._one(c, config), check_chats(chats)))
