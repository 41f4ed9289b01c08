"""Upstreams the proxy forwards to: OpenAI-compatible base URLs (aiohttp, pooled connections),
any LiteLLM provider id, or a local transformers model served in-process.

Each returns the OpenAI-format response plus its `Usage`; streaming yields SSE `data:` lines and
reports usage from the final chunk. `UpstreamError(retryable=True)` marks timeouts, connection
failures and 5xx answers, which the proxy retries and then sends to the fallbacks.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR, Price, api_price, local_price
from llm_eff.core.types import Cost, Usage
from routers.proxy.config import UpstreamConfig


class UpstreamError(Exception):
    """An upstream failed; `status` is what the client should see if nothing else answers."""

    def __init__(self, message: str, status: int = 502, retryable: bool = True) -> None:
        super().__init__(message)
        self.status, self.retryable = status, retryable


def _usage_from(data: dict[str, Any] | None, model: str, latency: float) -> Usage:
    data = data or {}
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        latency_s=latency,
        model=model,
    )


class Upstream:
    """Common part: name, config and price."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.name = config.name
        self.price = self._price()

    def _price(self) -> Price:
        if self.config.prompt_per_m is not None or self.config.completion_per_m is not None:
            return Price(
                self.config.prompt_per_m or 0.0,
                self.config.completion_per_m or 0.0,
                f"config:{self.name}",
            )
        return api_price(self.config.model) or Price(0.0, 0.0, "unpriced")

    def cost(self, usage: Usage) -> Cost:
        """Dollars for one call's usage."""
        return self.price.cost(usage)

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        """A non-streaming chat completion."""
        raise NotImplementedError

    async def complete_raw(self, body: dict[str, Any]) -> tuple[bytes, Usage]:
        """The same completion as JSON bytes, ready to send to the client."""
        data, usage = await self.complete(body)
        return json.dumps(data).encode(), usage

    def stream(self, body: dict[str, Any], usage_out: list[Usage]) -> AsyncIterator[bytes]:
        """SSE lines of a streaming completion; appends the final `Usage` to `usage_out`."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


class OpenAIUpstream(Upstream):
    """An OpenAI-compatible server (vLLM, llama.cpp, TGI, OpenAI itself) at `base_url`.

    Uses one pooled aiohttp session per proxy process (created in the serving event loop).
    """

    def __init__(self, config: UpstreamConfig) -> None:
        super().__init__(config)
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
        raw, usage = await self.complete_raw(body)
        return json.loads(raw), usage

    async def complete_raw(self, body: dict[str, Any]) -> tuple[bytes, Usage]:
        """POST /chat/completions; the upstream's JSON bytes pass through unchanged."""
        start = time.perf_counter()
        try:
            async with self._session().post(self.url, data=self._payload(body, False)) as resp:
                raw = await resp.read()
                status = resp.status
        except asyncio.TimeoutError:
            raise UpstreamError(f"{self.name}: timed out", 504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.name}: {type(exc).__name__}", 502) from None
        if status >= 500:
            raise UpstreamError(f"{self.name}: HTTP {status}", 502)
        if status >= 400:
            raise UpstreamError(f"{self.name}: {raw[:300].decode(errors='replace')}", status, False)
        try:
            data = json.loads(raw)
        except ValueError:
            raise UpstreamError(f"{self.name}: answer is not JSON", 502) from None
        usage = _usage_from(data.get("usage"), self.config.model, time.perf_counter() - start)
        return raw, usage

    async def stream(self, body: dict[str, Any], usage_out: list[Usage]) -> AsyncIterator[bytes]:
        """Pass the upstream's SSE lines through, reading usage from the last chunk."""
        start = time.perf_counter()
        try:
            async with self._session().post(self.url, data=self._payload(body, True)) as resp:
                if resp.status >= 400:
                    text = (await resp.read()).decode(errors="replace")[:300]
                    retry = resp.status >= 500
                    raise UpstreamError(
                        f"{self.name}: HTTP {resp.status} {text}",
                        502 if retry else resp.status,
                        retry,
                    )
                async for raw_line in resp.content:
                    line = raw_line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload != b"[DONE]" and b'"usage"' in payload:
                        chunk = json.loads(payload)
                        if chunk.get("usage"):
                            usage_out.append(
                                _usage_from(
                                    chunk["usage"], self.config.model, time.perf_counter() - start
                                )
                            )
                    yield line + b"\n\n"
        except asyncio.TimeoutError:
            raise UpstreamError(f"{self.name}: timed out", 504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{self.name}: {type(exc).__name__}", 502) from None

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self.session is not None:
            await self.session.close()


class LiteLLMUpstream(Upstream):
    """Any provider LiteLLM knows (OpenAI, Anthropic, Bedrock, ...), keys from the environment."""

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        """One `litellm.acompletion` call."""
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

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
        return data, _usage_from(data.get("usage"), self.config.model, time.perf_counter() - start)

    async def stream(self, body: dict[str, Any], usage_out: list[Usage]) -> AsyncIterator[bytes]:
        """A completion delivered as SSE (generated whole, then sent as chunks)."""
        async for line in _as_sse(self, body, usage_out):
            yield line


class LocalUpstream(Upstream):
    """A local transformers model (e.g. smollm2-135m) answering in-process, one call at a time."""

    def __init__(self, config: UpstreamConfig, backend: Any = None) -> None:
        super().__init__(config)
        if backend is None:
            from llm_eff.backends import make_backend
            from llm_eff.models import parse_model

            backend = make_backend(parse_model(config.model))
        self.backend = backend
        self.lock = asyncio.Lock()

    def _price(self) -> Price:
        return Price(0.0, 0.0, "local")

    def cost(self, usage: Usage) -> Cost:
        """Hardware time: $/hour over the tokens/s this call achieved (see llm_eff.core.prices)."""
        rate = usage.total_tokens / usage.latency_s if usage.latency_s else 0.0
        return local_price(DEFAULT_HARDWARE_DOLLARS_PER_HOUR, rate).cost(usage)

    async def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        """Generate with the local backend in a worker thread."""
        from llm_eff.backends import GenerationConfig

        messages = body.get("messages") or []
        prompt = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
        config = GenerationConfig(
            max_new_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
            temperature=float(body.get("temperature") or 0.0),
            top_p=float(body.get("top_p") or 1.0),
            stop=tuple(body.get("stop") or ())
            if not isinstance(body.get("stop"), str)
            else (body["stop"],),
            system_prompt=system,
        )
        async with self.lock:
            result = await asyncio.to_thread(self.backend.generate, [prompt], config)
        completion = result[0][0]
        usage = completion.usage
        data = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.config.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": completion.finish_reason,
                    "message": {"role": "assistant", "content": completion.text},
                }
            ],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
        return data, usage

    async def stream(self, body: dict[str, Any], usage_out: list[Usage]) -> AsyncIterator[bytes]:
        """The local completion sent as SSE chunks."""
        async for line in _as_sse(self, body, usage_out):
            yield line


async def _as_sse(
    upstream: Upstream, body: dict[str, Any], usage_out: list[Usage]
) -> AsyncIterator[bytes]:
    """Turn a whole completion into OpenAI-style SSE chunks (content, then usage, then DONE)."""
    data, usage = await upstream.complete(body)
    usage_out.append(usage)
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


def make_upstream(config: UpstreamConfig) -> Upstream:
    """The upstream object for a config entry."""
    if config.kind == "openai":
        return OpenAIUpstream(config)
    if config.kind == "local":
        return LocalUpstream(config)
    return LiteLLMUpstream(config)
