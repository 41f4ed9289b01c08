"""The one Backend contract: chat prompts in, n completions each with their `Usage` and `Cost`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from llm_eff.core.types import Cost, Usage


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings shared by every backend."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    system_prompt: str | None = None


@dataclass
class Completion:
    """One generated answer with what it consumed and cost."""

    text: str
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    finish_reason: str = "stop"
    details: dict[str, Any] = field(default_factory=dict)  # what the system reports (steps, ...)


@runtime_checkable
class Backend(Protocol):
    """Anything that turns user prompts into completions (local model, API, vLLM)."""

    name: str

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[list[Completion]]:
        """`config.n` completions for each prompt, in prompt order."""
        ...


def total_spent(completions: Iterable[Completion]) -> tuple[Usage, Cost]:
    """The summed usage and cost of several completions (all calls of one attempt)."""
    usage, cost = Usage(), Cost()
    for c in completions:
        usage, cost = usage + c.usage, cost + c.cost
    return usage, cost


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Cut `text` at the first occurrence of any stop string."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def chat_messages(prompt: str, config: GenerationConfig) -> list[dict[str, str]]:
    """OpenAI-style messages for one user prompt (with the optional system prompt)."""
    messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
    return [*messages, {"role": "user", "content": prompt}]
