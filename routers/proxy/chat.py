"""`POST /v1/chat/completions` as a plain ASGI handler: the proxy's hot path.

Steps: read the body under a size cap and a time limit, validate, authenticate, route, set
the output cap and reserve the request's worst case (`billing.worst_case`), call the upstream
chain (retries, then fallbacks: timeouts, 5xx, 429 and malformed answers), answer, then bill
what was delivered and settle the reservation. Settlement runs on every path (success, error,
timeout, client disconnect, cancellation). A client that disconnects cancels the upstream
call. Streaming falls back to the next upstream until the first byte has been sent; a stream
cut after that ends with an OpenAI-style error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from llm_eff.core.types import Usage
from routers.base import Decision
from routers.proxy.billing import Delivered, counted_usage, output_tokens, worst_case
from routers.proxy.cache import HEADER as CACHE_HEADER
from routers.proxy.cache import CacheKey
from routers.proxy.replay import JSON_HEADERS, SSE_HEADERS, completion_from_stream, serve_hit
from routers.proxy.upstreams import Upstream, UpstreamError
from routers.proxy.validate import ProxyError, validate_chat

if TYPE_CHECKING:
    from routers.proxy.app import Admission, Proxy
    from routers.proxy.config import UpstreamConfig
    from routers.proxy.store import KeyRecord

log = logging.getLogger("llm_eff.proxy")


def _route_headers(call: Call, upstream: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-llm-eff-upstream", upstream.encode()),
        (b"x-llm-eff-route-score", f"{call.decision.score:.4f}".encode()),
        (b"x-llm-eff-overhead-ms", f"{call.overhead * 1000:.3f}".encode()),
        (b"x-request-id", call.request_id.encode()),
    ]
    if call.cache_key is not None:
        headers.append((CACHE_HEADER, b"miss"))
    return headers


async def send_json(send: Any, status: int, payload: bytes, headers: list | None = None) -> None:
    """A complete JSON response."""
    await send(
        {"type": "http.response.start", "status": status, "headers": JSON_HEADERS + (headers or [])}
    )
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Any, exc: ProxyError, request_id: str | None = None) -> None:
    """An OpenAI-style error response."""
    headers = [(b"x-request-id", request_id.encode())] if request_id else []
    await send_json(send, exc.status, json.dumps(exc.body()).encode(), headers)


async def read_body(scope: dict, receive: Any, limit: int, timeout_s: float) -> bytes:
    """The request body; ProxyError 413 past `limit` bytes (checked before reading it all),
    408 if it has not all arrived within `timeout_s`."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise ProxyError(400, "bad Content-Length", code="invalid_request") from None
            if declared > limit:
                raise ProxyError(413, f"request body over {limit} bytes", code="body_too_large")
    chunks, size = [], 0
    try:
        # asyncio.timeout arms a timer and never yields by itself: a body that is already
        # here costs no trip through the event loop
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise ProxyError(413, f"request body over {limit} bytes", code="body_too_large")
                chunks.append(chunk)
                if not message.get("more_body"):
                    return b"".join(chunks)
    except TimeoutError:
        raise ProxyError(
            408, f"request body not received within {timeout_s:g} s", code="timeout"
        ) from None


def _retrying(settings: UpstreamConfig) -> Any:
    """Tenacity's retry loop for an upstream's `retries` and `retry_backoff_s`: retryable
    UpstreamErrors only, exponential backoff with jitter up to 2 s, the last error re-raised."""
    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential_jitter,
    )

    return AsyncRetrying(
        stop=stop_after_attempt(settings.retries + 1),
        wait=wait_exponential_jitter(
            multiplier=settings.retry_backoff_s, max=2.0, jitter=settings.retry_backoff_s
        ),
        retry=retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.retryable),
        reraise=True,
    )


class ClientGone(Exception):
    """The client disconnected."""


def _authorization(scope: dict) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


def parse_body(raw: bytes) -> dict[str, Any]:
    """The validated chat request; ProxyError 400 for anything that is not one."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, a 5,000-digit number, deep nest
        raise ProxyError(400, "request body is not valid JSON", code="invalid_json") from None
    return validate_chat(data)


def _hung_up(task: asyncio.Task, call: Call) -> None:
    """The client disconnected: cancel the request's task unless its answer is complete."""
    if not call.completed:
        call.status, call.error, call.client_gone = 499, "client disconnected", True
        task.cancel()


async def _hang_up_watch(receive: Any, task: asyncio.Task, call: Call) -> None:
    """Wait for the client's disconnect on `receive` (servers without the hook)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    _hung_up(task, call)


async def handle_chat(proxy: Proxy, scope: dict, receive: Any, send: Any) -> None:
    """Serve one chat completion request (JSON or SSE)."""
    started = time.perf_counter()
    request_id = uuid.uuid4().hex[:16]
    try:
        raw = await read_body(
            scope, receive, proxy.config.max_body_bytes, proxy.config.body_timeout_s
        )
        body = parse_body(raw)
        header = _authorization(scope)
        record = proxy.authenticate(header)
        cache_key = proxy.cache_key(body, record, header)
        hit = await proxy.cache.lookup(cache_key) if cache_key is not None else None
        if hit is not None:
            proxy.check_rate(record)  # a hit costs nothing but still counts as a request
        else:
            if cache_key is not None:
                proxy.metrics.cache.labels("miss").inc()
            upstream, decision, router_name = proxy.resolve(body)
            forward = {
                k: v for k, v in body.items() if k not in ("route", "max_cost_per_million_tokens")
            }
            chain = proxy.chain(upstream)
            out_cap = output_tokens(body)
            if out_cap is None:  # make the worst case known: the proxy sets the cap itself
                out_cap = forward["max_tokens"] = proxy.output_cap(chain)
            worst = worst_case(body, len(raw), out_cap)
            admission = await proxy.admit(record, chain, worst, request_id)
    except ClientGone:
        return
    except ProxyError as exc:
        proxy.log_refusal(exc, request_id, started)
        await send_error(send, exc, request_id)
        return
    except Exception:  # noqa: BLE001 - a bug must still answer JSON, and be findable
        log.exception("request %s: unexpected error before the upstream call", request_id)
        await send_error(send, internal_error(request_id), request_id)
        return
    if hit is not None:
        with contextlib.suppress(OSError):  # the client hung up: nothing was spent
            await serve_hit(proxy, body, record, hit, send, request_id, started)
        return
    call = Call(proxy, body, forward, record, decision, router_name, admission, started)
    call.request_id, call.cache_key = request_id, cache_key
    run = call.stream if body.get("stream") else call.complete
    task = asyncio.current_task()
    cycle = getattr(receive, "__self__", None)  # uvicorn's request cycle
    watcher = None
    if getattr(cycle, "llm_eff_hooks", False):  # `llm-eff serve`: told of a disconnect
        cycle.llm_eff_on_disconnect = lambda: _hung_up(task, call)
    else:  # another server: watch `receive` for the disconnect
        watcher = asyncio.ensure_future(_hang_up_watch(receive, task, call))
    try:
        await run(chain, send)  # in this task: no extra trip through a busy event loop
    except asyncio.CancelledError:
        if not call.client_gone:
            raise  # the server is shutting down
        task.uncancel()  # the hang-up was handled here
    except Exception:  # noqa: BLE001
        log.exception("request %s: unexpected error", request_id)
        call.status, call.error = 500, call.error or "internal error"
        if not call.answered:
            with contextlib.suppress(Exception):
                await send_error(send, internal_error(request_id), request_id)
    finally:
        if watcher is not None:
            watcher.cancel()
        else:
            cycle.llm_eff_on_disconnect = None
        # not shielded (a task per request): a shutdown that interrupts it leaves the
        # reservation to the sweep, which charges it in full
        await call.finish()


def internal_error(request_id: str) -> ProxyError:
    """The answer to an unexpected failure: JSON, with the id under which it was logged."""
    return ProxyError(
        500, f"internal error (request id {request_id})", "server_error", "internal_error"
    )


class Call:
    """One admitted request on its way through the upstream chain; `finish` bills it."""

    def __init__(
        self,
        proxy: Proxy,
        body: dict[str, Any],
        forward: dict[str, Any],
        record: KeyRecord | None,
        decision: Decision,
        router_name: str,
        admission: Admission,
        started: float,
    ) -> None:
        self.proxy, self.body, self.forward, self.record = proxy, body, forward, record
        self.decision, self.router_name = decision, router_name
        self.admission, self.started = admission, started
        self.request_id = ""
        self.candidate: Upstream | None = None  # the upstream whose answer is being delivered
        self.delivered = Delivered()
        self.failures: list[str] = []
        self.status, self.error = 502, None
        self.overhead = 0.0
        self.answered = False  # response headers sent
        self.completed = False  # the whole response sent
        self.client_gone = False
        self.finished = False
        self.cache_key: CacheKey | None = None  # the answer is cached under it when complete
        self.cache_answer: list[bytes] | None = []  # the JSON answer, or the relayed stream
        self.cache_bytes = 0
        self.cache_held: bytes | None = None  # the whole answer, held in the cache

    async def finish(self) -> None:
        """Bill what was delivered, settle the reservation, log (exactly once)."""
        if self.finished:
            return
        self.finished = True
        upstream = self.candidate
        delivered = self.delivered
        source = "none"
        usage = Usage()
        if upstream is not None and delivered.usage is not None:
            usage, source = delivered.usage, "upstream"
        elif upstream is not None and (delivered.texts or self.status == 200):
            latency = time.perf_counter() - self.started
            counted = await asyncio.to_thread(
                counted_usage, upstream.config.model, self.body, delivered.texts, latency
            )
            # another tokenizer's count is an estimate: the upstream was sent the cap, so
            # it cannot have written more than the worst case
            worst = self.admission.worst
            usage = Usage(
                prompt_tokens=min(counted.prompt_tokens, worst.prompt_tokens),
                completion_tokens=min(counted.completion_tokens, worst.completion_tokens),
                latency_s=latency,
                model=counted.model,
            )
            source = "proxy-count"
        dollars = upstream.cost(usage).dollars if upstream is not None else 0.0
        name = upstream.name if upstream is not None else self.admission.first
        await self.proxy.settle(self, name, usage, dollars, source)
        if self.cache_held:  # the upstream's whole answer, even if the client left after it
            try:
                await self.proxy.cache.store(self.cache_key, self.cache_held, name, dollars)
            except Exception:  # noqa: BLE001 - the answer was served; only caching failed
                log.exception("request %s: caching the answer failed", self.request_id)

    def keep_for_cache(self, data: bytes) -> None:
        """Keep relayed bytes for the cache, up to its size bound (past it: not cached), and
        once the answer is whole (a JSON body, or a stream's `[DONE]`), hold it in the cache
        before its last bytes go out, so the client's next request can already hit it."""
        if self.cache_key is None or self.cache_answer is None:
            return
        if self.candidate is None or self.candidate.name != self.admission.first:
            self.cache_answer = None  # never a fallback's answer
            return
        self.cache_bytes += len(data)
        if self.cache_bytes > self.proxy.cache.config.max_entry_bytes:
            self.cache_answer = None
            return
        self.cache_answer.append(data)
        streamed = bool(self.body.get("stream"))
        if streamed and not data.rstrip().endswith(b"[DONE]"):
            return
        answer = completion_from_stream(self.cache_answer) if streamed else data
        self.cache_answer = None
        if answer is not None:
            self.cache_held = answer
            self.proxy.cache.hold(self.cache_key, answer, self.candidate.name)

    async def _try_chain(
        self, chain: list[Upstream], call: Callable[[Upstream], Awaitable[Any]]
    ) -> tuple[Upstream, Any, float]:
        """(candidate, result, start time) of the first call along retries and fallbacks to
        succeed; raises the last UpstreamError when none does (at once if not retryable)."""
        last = UpstreamError("no upstream answered")
        for candidate in chain:
            try:
                if candidate.config.retries == 0:
                    # no tenacity here: its retry state is a reference cycle per request, so
                    # the collector, not reference counting, freed it (pauses in the tail)
                    return await self._attempt(candidate, call)
                async for attempt in _retrying(candidate.config):
                    with attempt:
                        return await self._attempt(candidate, call)
            except UpstreamError as exc:
                last = exc
                if not exc.retryable:
                    break
        raise last

    async def _attempt(
        self, candidate: Upstream, call: Callable[[Upstream], Awaitable[Any]]
    ) -> tuple[Upstream, Any, float]:
        """One call to `candidate`; a failure is counted and remembered, then raised."""
        before = time.perf_counter()
        try:
            return candidate, await call(candidate), before
        except UpstreamError as exc:
            self.proxy.metrics.upstream_errors.labels(candidate.name).inc()
            self.failures.append(f"{candidate.name}: {exc}")
            raise

    async def _fail(self, last: UpstreamError, send: Any) -> None:
        self.status, self.error = last.status, str(last)
        code = "rate_limited_upstream" if last.status == 429 else "upstream_failed"
        self.answered = True
        await send_error(
            send, ProxyError(last.status, str(last), "upstream_error", code), self.request_id
        )
        self.completed = True

    async def complete(self, chain: list[Upstream], send: Any) -> None:
        """Non-streaming: the first success along the chain, else the last error."""
        try:
            candidate, (payload, delivered), before = await self._try_chain(
                chain, lambda c: c.complete_raw(self.forward)
            )
        except UpstreamError as last:
            await self._fail(last, send)
            return
        self.candidate, self.delivered = candidate, delivered
        after = time.perf_counter()
        self.overhead = (before - self.started) + (time.perf_counter() - after)
        self.status = 200
        self.answered = True
        self.candidate = candidate
        self.keep_for_cache(payload)
        await send_json(send, 200, payload, _route_headers(self, candidate.name))
        self.completed = True

    async def stream(self, chain: list[Upstream], send: Any) -> None:
        """SSE: fall back until the first chunk arrives, then relay; cut streams end with an
        error event."""

        async def open_stream(candidate: Upstream) -> tuple[AsyncIterator[bytes], bytes]:
            self.candidate, self.delivered = candidate, Delivered()
            iterator = candidate.stream(self.forward, self.delivered).__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                first = b""
            except BaseException:
                self.candidate = None
                await iterator.aclose()
                raise
            return iterator, first

        try:
            _, (iterator, first), before = await self._try_chain(chain, open_stream)
        except UpstreamError as last:
            self.candidate = None
            await self._fail(last, send)
            return
        self.overhead = before - self.started
        try:
            await self._relay(first, iterator, send)
        finally:
            await iterator.aclose()

    async def _relay(self, first: bytes, iterator: AsyncIterator[bytes], send: Any) -> None:
        assert self.candidate is not None
        route = _route_headers(self, self.candidate.name)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + route})
        self.answered = True
        self.status = 200
        try:
            self.keep_for_cache(first)
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in iterator:
                self.keep_for_cache(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as exc:
            self.status, self.error = exc.status, str(exc)
            event = ProxyError(exc.status, str(exc), "upstream_error", "stream_cut").body()
            await send(
                {
                    "type": "http.response.body",
                    "body": f"data: {json.dumps(event)}\n\n".encode(),
                    "more_body": True,
                }
            )
        except OSError as exc:  # the client went away
            self.status, self.error = 499, f"client disconnected: {exc}"
            return
        self.completed = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
