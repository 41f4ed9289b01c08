"""Cache hits answered: a cached completion replayed as JSON or as an SSE stream, billed $0 and
logged with what it saved; and the completion a relayed stream spelled out, for storing."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from routers.proxy.cache import HEADER, Hit

if TYPE_CHECKING:
    from routers.proxy.app import Proxy
    from routers.proxy.store import KeyRecord

log = logging.getLogger("llm_eff.proxy")
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def completion_from_stream(chunks: list[bytes]) -> bytes | None:
    """The chat.completion JSON that a relayed SSE stream spelled out, or None if the stream
    was not a complete, well-formed one (then it is not cached)."""
    choices: dict[int, dict[str, Any]] = {}
    head: dict[str, Any] = {}
    usage = None
    done = False
    for line in b"".join(chunks).split(b"\n"):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(chunk, dict) or "error" in chunk:
            return None
        head = head or {k: chunk.get(k) for k in ("id", "created", "model")}
        usage = chunk.get("usage") or usage
        for part in chunk.get("choices") or []:
            if not isinstance(part, dict) or not isinstance(part.get("index", 0), int):
                return None
            choice = choices.setdefault(
                part.get("index", 0), {"role": "assistant", "content": "", "finish": None}
            )
            delta = part.get("delta") or {}
            if not isinstance(delta, dict) or delta.get("tool_calls") or delta.get("refusal"):
                return None  # only plain text answers are replayed
            if isinstance(delta.get("content"), str):
                choice["content"] += delta["content"]
            if isinstance(delta.get("role"), str):
                choice["role"] = delta["role"]
            choice["finish"] = part.get("finish_reason") or choice["finish"]
    if not done or not choices or any(c["finish"] is None for c in choices.values()):
        return None
    answer = {
        **head,
        "object": "chat.completion",
        "choices": [
            {
                "index": i,
                "message": {"role": c["role"], "content": c["content"]},
                "finish_reason": c["finish"],
            }
            for i, c in sorted(choices.items())
        ],
    }
    if usage is not None:
        answer["usage"] = usage
    return json.dumps(answer).encode()


def replay_json(hit: Hit) -> bytes:
    """A cached answer as a JSON response body, under a fresh id."""
    answer = json.loads(hit.payload)
    answer["id"] = f"chatcmpl-cache-{uuid.uuid4().hex[:20]}"
    return json.dumps(answer).encode()


def replay_stream(hit: Hit, include_usage: bool) -> list[bytes]:
    """A cached answer as SSE events: the text per choice, its finish reason, the usage when
    the request asked for it, and `[DONE]`."""
    answer = json.loads(hit.payload)
    base = {
        "id": f"chatcmpl-cache-{uuid.uuid4().hex[:20]}",
        "object": "chat.completion.chunk",
        "created": answer.get("created") or int(time.time()),
        "model": answer.get("model"),
    }
    events = []
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant")}
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {**call, "index": i} for i, call in enumerate(message["tool_calls"])
            ]
        index = choice.get("index", 0)
        events.append(
            {**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        )
        events.append(
            {
                **base,
                "choices": [
                    {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
                ],
            }
        )
    if include_usage and answer.get("usage") is not None:
        events.append({**base, "choices": [], "usage": answer["usage"]})
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


async def serve_hit(
    proxy: Proxy,
    body: dict[str, Any],
    record: KeyRecord | None,
    hit: Hit,
    send: Any,
    request_id: str,
    started: float,
) -> None:
    """Answer a request from the cache (its rate limits still apply: ProxyError 429) and log
    it: $0 upstream cost, the original answer's cost as saved."""
    proxy.check_rate(record)
    headers = [
        (HEADER, f"hit-{hit.kind}".encode()),
        (b"x-llm-eff-upstream", hit.upstream.encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if body.get("stream"):
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        events = replay_stream(hit, usage)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        payload = replay_json(hit)
        await send(
            {"type": "http.response.start", "status": 200, "headers": JSON_HEADERS + headers}
        )
        await send({"type": "http.response.body", "body": payload})
    latency = time.perf_counter() - started
    proxy.spend.add(
        {
            "ts": time.time(),
            "key_id": record.id if record else None,
            "requested_model": body.get("model"),
            "upstream": hit.upstream,
            "router": "",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.0,
            "latency_ms": latency * 1000,
            "overhead_ms": latency * 1000,
            "status": 200,
            "usage_source": "cache",
            "request_id": request_id,
            "cache": hit.kind,
            "saved": hit.cost,
        }
    )
    proxy.metrics.cached(hit.kind, hit.cost, latency)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s 200 cache=%s upstream=%s similarity=%.3f saved=$%.6f %.1f ms",
            request_id,
            hit.kind,
            hit.upstream,
            hit.similarity,
            hit.cost,
            latency * 1000,
        )
