"""The one Backend contract: chat prompts in, n completions each with their `Usage` and `Cost`."""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

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


class Message(TypedDict):
    """One chat turn, OpenAI-style: role "system", "user" or "assistant", and its text."""

    role: str
    content: str


Chat = list[Message]  # one conversation; a completion-style prompt is a one-message chat
ROLES = ("system", "user", "assistant")


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
    """Anything that turns chats into completions (local model, API, vLLM, llama.cpp)."""

    name: str

    def generate(self, chats: list[Chat], config: GenerationConfig) -> list[list[Completion]]:
        """`config.n` completions (the next assistant turn) for each chat, in chat order."""
        ...


@runtime_checkable
class ReportsDepth(Protocol):
    """A model whose depth varies per sequence (Dr.LLM, Mixture-of-Recursions)."""

    def depth_per_row(self) -> list[tuple[float, float]]:
        """(layers executed per token, share of full depth) per output row of the last generate."""
        ...


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far, in bytes."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


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


def user_chat(prompt: str, system: str | None = None) -> Chat:
    """The chat of one user prompt, after an optional system prompt."""
    head: Chat = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}]


def check_chats(chats: Any) -> list[Chat]:
    """`chats` as given if it is a list of chats; a clear TypeError for anything else."""
    if not isinstance(chats, list):
        raise TypeError(f"generate() takes a list of chats, got {type(chats).__name__}")
    for chat in chats:
        if isinstance(chat, str):
            raise TypeError(
                "generate() takes chats (lists of {'role', 'content'} messages), not strings: "
                "wrap a prompt as user_chat(prompt)"
            )
        if not isinstance(chat, list) or not all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
            for m in chat
        ):
            raise TypeError(
                "each chat is a list of {'role': 'system'|'user'|'assistant', 'content': str}"
            )
    return chats


def chat_text(chat: Chat) -> str:
    """A chat as plain text, for models without a chat template (turns on their own lines)."""
    return "\n".join(m["content"] for m in chat)
