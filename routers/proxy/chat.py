"""`POST /v1/chat/completions` as a plain ASGI handler: the proxy's hot path.

Steps: read the body under the size cap, validate, authenticate, route, reserve budget, call
the upstream chain (retries, then fallbacks), answer, settle the budget, queue the spend row.
Streaming falls back to the next upstream until the first byte has been sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from llm_eff.core.types import Usage
from routers.base import Decision
from routers.proxy.upstreams import Upstream, UpstreamError
from routers.proxy.validate import ProxyError, validate_chat

if TYPE_CHECKING:
    from routers.proxy.app import Proxy
    from routers.proxy.store import KeyRecord

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def _route_headers(
    upstream: str, decision: Decision, overhead_s: float
) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-llm-eff-upstream", upstream.encode()),
        (b"x-llm-eff-route-score", f"{decision.score:.4f}".encode()),
        (b"x-llm-eff-overhead-ms", f"{overhead_s * 1000:.3f}".encode()),
    ]


async def send_json(send: Any, status: int, payload: bytes, headers: list | None = None) -> None:
    """A complete JSON response."""
    await send(
        {"type": "http.response.start", "status": status, "headers": JSON_HEADERS + (headers or [])}
    )
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Any, exc: ProxyError) -> None:
    """An OpenAI-style error response."""
    await send_json(send, exc.status, json.dumps(exc.body()).encode())


async def read_body(scope: dict, receive: Any, limit: int) -> bytes:
    """The request body; ProxyError 413 past `limit` bytes (checked before reading it all)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and int(value or 0) > limit:
            raise ProxyError(413, f"request body over {limit} bytes", code="body_too_large")
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProxyError(413, f"request body over {limit} bytes", code="body_too_large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _authorization(scope: dict) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


async def handle_chat(proxy: Proxy, scope: dict, receive: Any, send: Any) -> None:
    """Serve one chat completion request (JSON or SSE)."""
    started = time.perf_counter()
    try:
        raw = await read_body(scope, receive, proxy.config.max_body_bytes)
        try:
            body = validate_chat(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ProxyError(400, "request body is not valid JSON", code="invalid_json") from None
        record = proxy.authenticate(_authorization(scope))
        upstream, decision, router_name = proxy.resolve(body)
        reserved = proxy.admit(record, upstream, body)
    except ProxyError as exc:
        await send_error(send, exc)
        return
    forward = {k: v for k, v in body.items() if k not in ("route", "max_cost_per_million_tokens")}
    call = Call(proxy, body, forward, record, decision, router_name, reserved, started)
    if body.get("stream"):
        await call.stream(upstream, send)
    else:
        await call.complete(upstream, send)


class Call:
    """One admitted request on its way through the upstream chain."""

    def __init__(
        self,
        proxy: Proxy,
        body: dict[str, Any],
        forward: dict[str, Any],
        record: KeyRecord | None,
        decision: Decision,
        router_name: str,
        reserved: float,
        started: float,
    ) -> None:
        self.proxy, self.body, self.forward, self.record = proxy, body, forward, record
        self.decision, self.router_name = decision, router_name
        self.reserved, self.started = reserved, started

    def _done(
        self,
        upstream: str,
        usage: Usage,
        dollars: float,
        overhead: float,
        status: int,
        error: str | None = None,
    ) -> None:
        self.proxy.settle(self.record, self.reserved, dollars, usage.total_tokens)
        self.proxy.log(
            self.record,
            self.body,
            upstream,
            self.router_name,
            self.decision,
            usage,
            dollars,
            self.started,
            overhead,
            status,
            error,
        )

    async def _fail(self, upstream: Upstream, last: UpstreamError, send: Any) -> None:
        self._done(upstream.name, Usage(), 0.0, 0.0, last.status, str(last))
        await send_error(
            send, ProxyError(last.status, str(last), "upstream_error", "upstream_failed")
        )

    async def _try_chain(
        self, upstream: Upstream, call: Callable[[Upstream], Awaitable[Any]]
    ) -> tuple[Upstream, Any, float]:
        """(candidate, result, start time) of the first call along retries and fallbacks to
        succeed; raises the last UpstreamError when none does (at once if not retryable)."""
        last = UpstreamError("no upstream answered")
        for candidate in self.proxy.chain(upstream):
            for _ in range(candidate.config.retries + 1):
                before = time.perf_counter()
                try:
                    return candidate, await call(candidate), before
                except UpstreamError as exc:
                    self.proxy.metrics.upstream_errors.labels(candidate.name).inc()
                    last = exc
                    if not exc.retryable:
                        break
            if not last.retryable:
                break
        raise last

    async def complete(self, upstream: Upstream, send: Any) -> None:
        """Non-streaming: the first success along the chain, else the last error."""
        try:
            candidate, (payload, usage), before = await self._try_chain(
                upstream, lambda c: c.complete_raw(self.forward)
            )
        except UpstreamError as last:
            await self._fail(upstream, last, send)
            return
        after = time.perf_counter()
        dollars = candidate.cost(usage).dollars
        overhead = (before - self.started) + (time.perf_counter() - after)
        self._done(candidate.name, usage, dollars, overhead, 200)
        await send_json(send, 200, payload, _route_headers(candidate.name, self.decision, overhead))

    async def stream(self, upstream: Upstream, send: Any) -> None:
        """SSE: fall back until the first chunk arrives, then relay; log when it ends."""

        async def open_stream(
            candidate: Upstream,
        ) -> tuple[AsyncIterator[bytes], list[Usage], bytes]:
            usage_out: list[Usage] = []
            iterator = candidate.stream(self.forward, usage_out).__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                first = b""
            return iterator, usage_out, first

        try:
            candidate, (iterator, usage_out, first), before = await self._try_chain(
                upstream, open_stream
            )
        except UpstreamError as last:
            await self._fail(upstream, last, send)
            return
        await self._relay(candidate, first, iterator, usage_out, before - self.started, send)

    async def _relay(
        self,
        candidate: Upstream,
        first: bytes,
        iterator: AsyncIterator[bytes],
        usage_out: list[Usage],
        overhead: float,
        send: Any,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": SSE_HEADERS + _route_headers(candidate.name, self.decision, overhead),
            }
        )
        status, error = 200, None
        try:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as exc:
            status, error = exc.status, str(exc)
        except OSError as exc:  # the client went away
            status, error = 499, f"client disconnected: {exc}"
        finally:
            usage = usage_out[-1] if usage_out else Usage()
            self._done(
                candidate.name, usage, candidate.cost(usage).dollars, overhead, status, error
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
