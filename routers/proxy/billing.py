"""What a request may cost (its reservation) and what it did cost (its bill).

The reservation is the request's worst case as the upstream will execute it:
`n` x the larger of `max_tokens` / `max_completion_tokens` output tokens (when the request
sets neither, the proxy sets `max_tokens` itself, to the upstream's maximum output or the
configured default, and sends it upstream), plus a prompt bound that no byte-level tokenizer
can exceed: the request body's size in bytes (a JSON string is never shorter than the UTF-8
text it encodes, and every token covers at least one byte), plus `MESSAGE_OVERHEAD` tokens
per message for the chat template and `IMAGE_TOKENS` per image part.

The bill is the upstream's usage when it is usable (non-negative integers), else the tokens
the proxy relayed, counted with LiteLLM's `token_counter` (the upstream model's tokenizer
where LiteLLM knows it, else cl100k), capped at the worst case (the upstream was sent the
cap; another tokenizer's count is an estimate), and the spend row says which
(`usage_source`).
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from typing import Any

from llm_eff.core.types import Usage

MESSAGE_OVERHEAD = 8
IMAGE_TOKENS = 2_000  # above the largest per-image charge of the major APIs
MAX_REPORTED_TOKENS = 10**9  # a usage field above this is not believed


@dataclass
class Delivered:
    """What an upstream answer carried: its usage if valid, and the text relayed to the
    client (content and tool-call arguments of every choice)."""

    usage: Usage | None = None
    texts: list[str] = field(default_factory=list)
    bytes: int = 0
    invalid_usage: bool = False


def parse_usage(data: Any, model: str, latency_s: float) -> Usage | None:
    """The upstream's usage object as `Usage`, or None unless its counts are plain integers
    in [0, MAX_REPORTED_TOKENS]."""
    if not isinstance(data, dict):
        return None
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = data.get(name)
        if type(value) is not int or not 0 <= value <= MAX_REPORTED_TOKENS:
            return None
        counts.append(value)
    details = data.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    if type(cached) is not int or not 0 <= cached <= counts[0]:
        cached = 0
    return Usage(
        prompt_tokens=counts[0],
        completion_tokens=counts[1],
        cached_tokens=cached,
        latency_s=latency_s,
        model=model,
    )


def choice_texts(choices: Any, key: str) -> list[str]:
    """The text of each choice's `message` (key "message") or `delta` (key "delta"):
    content plus tool-call arguments."""
    texts = []
    if not isinstance(choices, list):
        return texts
    for choice in choices:
        part = choice.get(key) if isinstance(choice, dict) else None
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("content"), str):
            texts.append(part["content"])
        for call in part.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                texts.append(function["arguments"])
    return texts


def output_tokens(body: dict[str, Any]) -> int | None:
    """The request's output cap: the larger of `max_tokens` / `max_completion_tokens`."""
    caps = [body.get(k) for k in ("max_tokens", "max_completion_tokens")]
    caps = [c for c in caps if isinstance(c, int)]
    return max(caps) if caps else None


def _images(messages: list[Any]) -> int:
    count = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(
                1
                for part in content
                if isinstance(part, dict) and part.get("type") in ("image_url", "input_image")
            )
    return count


def worst_case(body: dict[str, Any], raw_size: int, out_cap: int) -> Usage:
    """The most tokens the request can use: a prompt bound and `n` x the output cap."""
    messages = body.get("messages") or []
    prompt = raw_size + MESSAGE_OVERHEAD * len(messages) + IMAGE_TOKENS * _images(messages)
    n = body.get("n") if isinstance(body.get("n"), int) else 1
    return Usage(prompt_tokens=prompt, completion_tokens=n * out_cap)


def _counter() -> Any:
    from llm_eff.core.prices import load_litellm

    return load_litellm().token_counter


def warm_counter() -> None:
    """Import LiteLLM's token counter (seconds, once) before a request needs it.

    In a server that froze its start-up objects out of the collector's way (`gc.freeze`), the
    import's objects (a quarter of a million: LiteLLM's and OpenAI's pydantic models) are
    start-up objects too and are frozen with them; left young, every later collection walked
    them: pauses of 25-250 ms in the proxy's latency tail, measured."""
    _counter()
    if gc.get_freeze_count():
        gc.freeze()


def counted_usage(model: str, body: dict[str, Any], texts: list[str], latency_s: float) -> Usage:
    """The tokens of the request and of the relayed text, counted by the proxy."""
    token_counter = _counter()
    messages = body.get("messages") or []
    try:
        prompt = int(token_counter(model=model, messages=messages))
    except Exception:  # noqa: BLE001 - content LiteLLM cannot tokenize: count its bytes
        prompt = len(json.dumps(messages).encode()) // 4 + MESSAGE_OVERHEAD * len(messages)
    text = "".join(texts)
    completion = int(token_counter(model=model, text=text)) if text else 0
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, latency_s=latency_s, model=model
    )
