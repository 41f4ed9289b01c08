"""Upstreams the proxy forwards to: OpenAI-compatible base URLs (aiohttp, pooled connections),
any LiteLLM provider id, or a local transformers model served in-process (`local.py`).

Each returns the OpenAI-format answer and a `Delivered` record (the upstream's usage if it is
valid, and the text relayed, from which the proxy bills when the usage is missing); streaming
yields SSE `data:` lines. Answers are read under a size cap and checked for shape.
`UpstreamError(retryable=True)` marks timeouts, connection failures, 5xx and 429 answers and
malformed answers, which the proxy retries and then sends to the fallbacks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from llm_eff.core.prices import (
    Price,
    api_max_output_tokens,
    api_price,
)
from llm_eff.core.types import Cost, Usage
from routers.proxy.billing import Delivered, choice_texts, parse_usage
from routers.proxy.config import UpstreamConfig


class UpstreamError(Exception):
    """An upstream failed; `status` is what the client should see if nothing else answers."""

    def __init__(self, message: str, status: int = 502, retryable: bool = True) -> None:
        super().__init__(message)
        self.status, self.retryable = status, retryable


def _malformed(name: str, what: str) -> UpstreamError:
    return UpstreamError(f"{name}: malformed answer ({what})", 502)


def read_completion(name: str, raw: bytes, model: str, latency_s: float) -> Delivered:
    """Check a non-streaming answer's shape; its usage (if valid) and relayed text."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise _malformed(name, "not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        raise _malformed(name, "no choices")
    usage = parse_usage(data.get("usage"), model, latency_s)
    return Delivered(
        usage=usage,
        texts=choice_texts(data["choices"], "message"),
        bytes=len(raw),
        invalid_usage=usage is None and data.get("usage") is not None,
    )


def read_chunk(name: str, payload: bytes, model: str, latency_s: float, out: Delivered) -> None:
    """Record one SSE chunk's text and usage in `out`; UpstreamError if it is not a chunk."""
    try:
        chunk = json.loads(payload)
    except (ValueError, RecursionError):
        raise _malformed(name, "a stream event is not JSON") from None
    if not isinstance(chunk, dict):
        raise _malformed(name, "a stream event is not an object")
    if "error" in chunk and "choices" not in chunk:
        raise UpstreamError(f"{name}: error event in the stream", 502)
    out.texts.extend(choice_texts(chunk.get("choices"), "delta"))
    if chunk.get("usage") is not None:
        usage = parse_usage(chunk["usage"], model, latency_s)
        if usage is None:
            out.invalid_usage = True
        else:
            out.usage = usage


class Upstream:
    """Common part: name, config, price and output cap."""

    def __init__(self, config: UpstreamConfig, max_body_bytes: int = 16_000_000) -> None:
        self.config = config
        self.name = config.name
        self.price = self._price()
        self.max_body_bytes = max_body_bytes

    def _price(self) -> Price:
        if self.config.prompt_per_m is not None or self.config.completion_per_m is not None:
            return Price(
                self.config.prompt_per_m or 0.0,
                self.config.completion_per_m or 0.0,
                f"config:{self.name}",
            )
        return api_price(self.config.model) or Price(0.0, 0.0, "unpriced")

    def max_output(self) -> int | None:
        """The most output tokens this upstream writes: the config's, else (for LiteLLM
        upstreams, looked up once) LiteLLM's model info."""
        if self.config.max_output_tokens or self.config.kind != "litellm":
            return self.config.max_output_tokens
        if not hasattr(self, "_max_output"):
            self._max_output = api_max_output_tokens(self.config.model)
        return self._max_output

    def lease_s(self) -> float:
        """An upper bound on this upstream's share of a request's duration (a stream too)."""
        return self.config.timeout_s * (self.config.retries + 1)

    def cost(self, usage: Usage) -> Cost:
        """Dollars for one call's usage."""
        return self.price.cost(usage)

    def worst_cost(self, worst: Usage) -> float:
        """The most one call within `worst` tokens can cost here, in dollars."""
        return self.cost(worst).dollars

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
        """A non-streaming chat completion and its usage (None: read it from the answer)."""
        raise NotImplementedError

    async def complete_raw(self, body: dict[str, Any]) -> tuple[bytes, Delivered]:
        """The same completion as JSON bytes, ready to send to the client, and what it carried."""
        start = time.perf_counter()
        data, usage = await self.complete(body)
        raw = json.dumps(data).encode()
        delivered = read_completion(self.name, raw, self.config.model, time.perf_counter() - start)
        if usage is not None:  # the upstream's own count (a local model's includes its time)
            delivered.usage = usage
        return raw, delivered

    def stream(self, body: dict[str, Any], out: Delivered) -> AsyncIterator[bytes]:
        """SSE lines of a streaming completion; records text and usage in `out`."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, name: str) -> bytes:
    if (resp.content_length or 0) > cap:
        raise UpstreamError(f"{name}: answer over {cap} bytes", 502)
    chunks, size = [], 0
    while True:
        chunk = await resp.content.read(1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise UpstreamError(f"{name}: answer over {cap} bytes", 502)
        chunks.append(chunk)


def _status_error(name: str, status: int, text: str) -> UpstreamError:
    """5xx and 429 are worth another upstream; other 4xx are the request's fault."""
    message = f"{name}: HTTP {status} {text}".rstrip()
    if status >= 500:
        return UpstreamError(message, 502)
    return UpstreamError(message, status, retryable=status == 429)


class OpenAIUpstream(Upstream):
    """An OpenAI-compatible server (vLLM, llama.cpp, TGI, OpenAI itself) at `base_url`.

    Uses one pooled aiohttp session per proxy process (created in the serving event loop).
    """

    def __init__(self, config: UpstreamConfig, max_body_bytes: int = 16_000_000) -> None:
        super().__init__(config, max_body_bytes)
        key = os.environ.get(config.api_key_env) if config.api_key_env else None
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            timeout = aiohttp.ClientTimeout(
                total=self.config.timeout_s, connect=min(self.config.timeout_s, 5.0)
            )
            connector = aiohttp.TCPConnector(limit=1024, ttl_dns_cache=300)
            self.session = aiohttp.ClientSession(
                timeout=timeout, connector=connector, headers=self.headers
            )
        return self.session

    def _payload(self, body: dict[str, Any], stream: bool) -> bytes:
        payload = {**body, "model": self.config.model, "stream": stream}
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return json.dumps(payload).encode()

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        """POST /chat/completions and return the JSON with its usage."""
        raw, delivered = await self.complete_raw(body)
        return json.loads(raw), delivered.usage or Usage(model=self.config.model)

    async def complete_raw(self, body: dict[str, Any]) -> tuple[bytes, Delivered]:
        """POST /chat/completions; the upstream's JSON bytes pass through unchanged."""
        start = time.perf_counter()
        try:
            async with self._session().post(self.url, data=self._payload(body, False)) as resp:
                if resp.status >= 400:
                    text = (await resp.content.read(300)).decode(errors="replace")
                    raise _status_error(self.name, resp.status, text)
                raw = await _read_capped(resp, self.max_body_bytes, self.name)
        except TimeoutError:
            raise UpstreamError(f"{self.name}: timed out", 504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.name}: {type(exc).__name__}", 502) from None
        latency = time.perf_counter() - start
        return raw, read_completion(self.name, raw, self.config.model, latency)

    async def stream(self, body: dict[str, Any], out: Delivered) -> AsyncIterator[bytes]:
        """Pass the upstream's SSE lines through, reading text and usage from each event."""
        start = time.perf_counter()
        model, cap = self.config.model, self.max_body_bytes
        try:
            async with self._session().post(self.url, data=self._payload(body, True)) as resp:
                if resp.status >= 400:
                    text = (await resp.content.read(300)).decode(errors="replace")
                    raise _status_error(self.name, resp.status, text)
                try:
                    async for raw_line in resp.content:
                        out.bytes += len(raw_line)
                        if out.bytes > cap:
                            raise UpstreamError(f"{self.name}: stream over {cap} bytes", 502)
                        line = raw_line.strip()
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload != b"[DONE]":
                            latency = time.perf_counter() - start
                            read_chunk(self.name, payload, model, latency, out)
                        yield line + b"\n\n"
                except BaseException:
                    resp.close()  # drop the connection: the upstream stops generating
                    raise
        except TimeoutError:
            raise UpstreamError(f"{self.name}: timed out", 504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.name}: {type(exc).__name__}", 502) from None
        except ValueError:  # aiohttp: a line longer than its buffer
            raise _malformed(self.name, "a stream line is too long") from None

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self.session is not None:
            await self.session.close()


class LiteLLMUpstream(Upstream):
    """Any provider LiteLLM knows (OpenAI, Anthropic, Bedrock, ...), keys from the environment."""

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        """One `litellm.acompletion` call."""
        from llm_eff.core.prices import load_litellm

        litellm = load_litellm()
        start = time.perf_counter()
        args = {
            k: v
            for k, v in body.items()
            if k not in ("model", "stream")  # proxy-only knobs are gone already (chat.py)
        }
        try:
            resp = await litellm.acompletion(
                model=self.config.model, timeout=self.config.timeout_s, **args
            )
        except litellm.Timeout:
            raise UpstreamError(f"{self.name}: timed out", 504) from None
        except (litellm.AuthenticationError, litellm.BadRequestError) as exc:
            raise UpstreamError(f"{self.name}: {exc.message}", 400, False) from None
        except Exception as exc:  # noqa: BLE001 - provider or network failure
            raise UpstreamError(f"{self.name}: {type(exc).__name__}", 502) from None
        data = resp.model_dump()
        usage = parse_usage(data.get("usage"), self.config.model, time.perf_counter() - start)
        return data, usage

    async def stream(self, body: dict[str, Any], out: Delivered) -> AsyncIterator[bytes]:
        """A completion delivered as SSE (generated whole, then sent as chunks)."""
        async for line in _as_sse(self, body, out):
            yield line


async def _as_sse(upstream: Upstream, body: dict[str, Any], out: Delivered) -> AsyncIterator[bytes]:
    """Turn a whole completion into OpenAI-style SSE chunks (content, then usage, then DONE)."""
    raw, delivered = await upstream.complete_raw(body)
    data = json.loads(raw)
    out.usage, out.texts, out.invalid_usage = delivered.usage, delivered.texts, False
    base = {
        "id": data.get("id", "chatcmpl"),
        "object": "chat.completion.chunk",
        "created": data.get("created", int(time.time())),
        "model": data.get("model"),
    }
    text = (data.get("choices") or [{}])[0].get("message", {}).get("content") or ""
    words = text.split(" ")
    for i in range(0, len(words), 8):
        piece = " ".join(words[i : i + 8]) + (" " if i + 8 < len(words) else "")
        chunk = {
            **base,
            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    final = {
        **base,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": data.get("usage"),
    }
    yield f"data: {json.dumps(final)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def make_upstream(config: UpstreamConfig, max_body_bytes: int = 16_000_000) -> Upstream:
    """The upstream object for a config entry (answers capped at `max_body_bytes`)."""
    if config.kind == "openai":
        return OpenAIUpstream(config, max_body_bytes)
    if config.kind == "local":
        from routers.proxy.local import make_local_upstream

        return make_local_upstream(config, max_body_bytes)
    return LiteLLMUpstream(config, max_body_bytes)
