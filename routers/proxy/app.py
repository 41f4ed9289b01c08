"""The OpenAI-compatible router proxy (FastAPI): `/v1/chat/completions` (JSON and SSE),
`/v1/models`, `/health`, `/metrics`, and `/admin/keys` for virtual keys.

Per request: size cap and validation, key check, routing (`router-<name>-<threshold>`, a plain
upstream name, or the body's `route` override, within `max_cost_per_million_tokens`), budget
and rate checks, the upstream call with retries and fallbacks, then the spend row (queued, off
the hot path) and metrics. Responses carry `x-llm-eff-upstream`, `x-llm-eff-route-score` and
`x-llm-eff-overhead-ms` (the proxy's own time, upstream time excluded).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
import uuid
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from llm_eff.core.errors import UserError
from llm_eff.core.types import Usage
from routers.base import Decision
from routers.proxy.admin import add_admin_routes, error_response
from routers.proxy.billing import warm_counter
from routers.proxy.cache import CacheKey, ResponseCache, scope_of
from routers.proxy.chat import handle_chat, internal_error
from routers.proxy.config import ProxyConfig
from routers.proxy.ledger import BudgetLedger, LedgerWriter
from routers.proxy.metrics import Metrics
from routers.proxy.routing import knows, resolve
from routers.proxy.store import Database, KeyRecord, KeyStore, SpendLog, find_key
from routers.proxy.upstreams import Upstream, make_upstream
from routers.proxy.validate import ProxyError
from routers.registry import make_router

KEY_RELOAD_S = 5.0
LEASE_MARGIN_S = 60.0  # added to a request's longest possible duration for its reservation
log = logging.getLogger("llm_eff.proxy")


@dataclass
class KeyUsage:
    """In-memory rate state of one key (per proxy process) and its last known spend."""

    spent: float = 0.0
    window: deque = field(default_factory=deque)  # (time, tokens) of the last 60 s


@dataclass
class Admission:
    """An admitted request: its key, its reservation in the ledger (budgeted keys) and the
    upstream it was routed to first."""

    first: str
    worst: Usage = field(default_factory=Usage)
    reservation: str | None = None
    reserved_usd: float = 0.0


class Proxy:
    """State shared by the handlers: upstreams, routers, keys, budgets, spend log, metrics."""

    def __init__(self, config: ProxyConfig, upstreams: dict[str, Upstream] | None = None) -> None:
        self.config = config
        self.upstreams = upstreams or {
            n: make_upstream(c, config.max_upstream_body_bytes) for n, c in config.upstreams.items()
        }
        self.routers = {
            name: (make_router(rc.kind, name, rc.options), rc)
            for name, rc in config.routers.items()
        }
        for name, (router, rc) in self.routers.items():
            unmapped = [t for t in getattr(router, "targets", []) if t not in rc.targets]
            if rc.kind == "any" and unmapped:
                raise UserError(
                    f"router '{name}': no upstream for target(s) {', '.join(unmapped)} "
                    "(add them under targets)"
                )
        self.db = Database(config.database_url)
        self.keys = KeyStore(self.db)
        self.ledger = BudgetLedger(self.db)
        self.ledger_writer = LedgerWriter(self.ledger, on_loop=self.db.is_sqlite)
        self.spend = SpendLog(self.db, config.flush_interval_s)
        self.metrics = Metrics()
        self.cache = ResponseCache(config.cache, self.db) if config.cache.mode != "off" else None
        for upstream in self.upstreams.values():
            upstream.max_output()  # LiteLLM's model info: read now, not on a request
        if any(u.config.kind != "local" for u in self.upstreams.values()):
            # LiteLLM's token counter bills answers that come without usage: its import takes
            # seconds, so it starts now, beside serving (counting runs in a worker thread,
            # so an early answer without usage waits for it there, not on the event loop)
            threading.Thread(target=warm_counter, name="import-litellm", daemon=True).start()
        self.records: dict[str, KeyRecord] = {}
        self.usage: dict[str, KeyUsage] = {}
        self.reload_keys()

    def _fetch_keys(self) -> tuple[dict[str, KeyRecord], dict[str, float]]:
        """Keys, and spend per key when some key has a budget, from the database (blocking:
        run it off the event loop)."""
        records = {r.key_hash: r for r in self.keys.all()}
        budgeted = any(r.budget_usd is not None for r in records.values())
        return records, self.keys.spent() if budgeted else {}

    def _apply_keys(self, records: dict[str, KeyRecord], spent: dict[str, float]) -> None:
        """Merge fetched keys and spend into memory. Keys are never deleted and a revocation
        is final, so a fetch that started before a revocation cannot bring the key back."""
        merged = dict(self.records)
        for key_hash, record in records.items():
            known = merged.get(key_hash)
            merged[key_hash] = known if known is not None and known.revoked else record
        self.records = merged
        for key_id, total in spent.items():
            state = self.usage.setdefault(key_id, KeyUsage())
            state.spent = max(state.spent, total)  # the log lags by one flush interval

    def reload_keys(self) -> None:
        """Refresh keys (created or revoked elsewhere, e.g. by `llm-eff keys`) and spend now."""
        self._apply_keys(*self._fetch_keys())

    async def refresh_keys(self) -> None:
        """Every KEY_RELOAD_S, reload keys and spend and charge reservations left unsettled
        past their lease (a replica that died mid-request), in a worker thread."""
        while True:
            await asyncio.sleep(KEY_RELOAD_S)
            try:
                self._apply_keys(*await asyncio.to_thread(self._fetch_keys))
                swept = await asyncio.to_thread(self.ledger.sweep)
                if self.cache is not None:
                    await asyncio.to_thread(self.cache.refresh)
                if swept:
                    log.warning("charged %d reservation(s) left unsettled past their lease", swept)
            except Exception:  # noqa: BLE001 - keep refreshing; the database may come back
                log.exception("key refresh failed")

    # -- request steps -------------------------------------------------------------------
    def authenticate(self, header: str) -> KeyRecord | None:
        """The caller's key record from an Authorization header value; None for anonymous use
        where keys are optional."""
        token = _bearer(header)
        if self._is_admin(token):
            return None  # the operator's own key: no budget
        if not token:
            keys_in_use = bool(self.records) and not self.config.auth.allow_anonymous
            if self.config.require_keys or keys_in_use:
                raise ProxyError(401, "missing API key", "authentication_error", "invalid_api_key")
            return None
        record = find_key(self.records, token)
        if record is None:
            if not self.config.require_keys and not self.records:
                return None  # keys not in use: any bearer token is accepted
            raise ProxyError(
                401, "invalid or revoked API key", "authentication_error", "invalid_api_key"
            )
        return record

    def _is_admin(self, token: str) -> bool:
        admin = self.config.admin_key
        return bool(token and admin and hmac.compare_digest(token, admin))

    def cache_key(
        self, body: dict[str, Any], record: KeyRecord | None, header: str
    ) -> CacheKey | None:
        """The request's identity in the response cache (in the caller's scope), or None when
        the cache is off or the request names a model or router this proxy no longer has."""
        if self.cache is None:
            return None
        if not knows(self, body):
            return None
        token = _bearer(header)
        scope = scope_of(
            self.config.cache, record.id if record else None, token, self._is_admin(token)
        )
        return self.cache.key(scope, body)

    def resolve(self, body: dict[str, Any]) -> tuple[Upstream, Decision, str]:
        """(upstream, decision, router name) for a request (`routers.proxy.routing`)."""
        return resolve(self, body)

    def output_cap(self, chain: list[Upstream]) -> int:
        """The output cap the proxy sets when a request has none: the smallest maximum output
        along the chain (each upstream's own, else the configured default)."""
        return min(u.max_output() or self.config.default_max_tokens for u in chain)

    async def admit(
        self, record: KeyRecord | None, chain: list[Upstream], worst: Usage, request_id: str
    ) -> Admission:
        """Check rate limits and, for a budgeted key, reserve the request's worst case (the
        priciest upstream of its chain) in the ledger; ProxyError 429 if it does not fit."""
        admission = Admission(first=chain[0].name, worst=worst)
        if record is None:
            return admission
        state = self.check_rate(record)
        if record.budget_usd is not None:
            dollars = max(u.worst_cost(worst) for u in chain)
            lease = sum(u.lease_s() for u in chain) + self.config.body_timeout_s + LEASE_MARGIN_S
            rid = await self.ledger_writer.reserve(record.id, record.budget_usd, dollars, lease)
            if rid is None:
                state.window.pop()  # refused: not a request served
                raise ProxyError(
                    429, "budget exhausted for this key", "insufficient_quota", "insufficient_quota"
                )
            admission.reservation, admission.reserved_usd = rid, dollars
        return admission

    def check_rate(self, record: KeyRecord | None) -> KeyUsage | None:
        """Count a request against its key's requests- and tokens-per-minute limits;
        ProxyError 429 past one. The key's rate state (None without a key)."""
        if record is None:
            return None
        state = self.usage.setdefault(record.id, KeyUsage())
        now = time.monotonic()
        while state.window and now - state.window[0][0] > 60:
            state.window.popleft()
        if record.rpm is not None and len(state.window) >= record.rpm:
            raise ProxyError(
                429, "requests per minute limit reached", "rate_limit_error", "rate_limit_exceeded"
            )
        if record.tpm is not None and sum(t for _, t in state.window) >= record.tpm:
            raise ProxyError(
                429, "tokens per minute limit reached", "rate_limit_error", "rate_limit_exceeded"
            )
        state.window.append((now, 0))
        return state

    async def settle(
        self, call: Any, upstream: str, usage: Usage, dollars: float, source: str
    ) -> None:
        """Bill a finished request: its spend row (written with the reservation's settlement
        for a budgeted key, else queued), rate window, metrics and log line."""
        record, admission = call.record, call.admission
        latency = time.perf_counter() - call.started
        row = {
            "ts": time.time(),
            "key_id": record.id if record else None,
            "requested_model": call.body.get("model"),
            "upstream": upstream,
            "router": call.router_name,
            "score": call.decision.score if call.decision else None,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost": dollars,
            "latency_ms": latency * 1000,
            "overhead_ms": call.overhead * 1000,
            "status": call.status,
            "error": call.error,
            "usage_source": source,
            "fallback_from": "; ".join(call.failures)[:2000] or None,
            "request_id": call.request_id,
        }
        if admission.reservation is not None:
            try:
                await self.ledger_writer.settle(admission.reservation, row)
            except Exception:  # noqa: BLE001 - the sweep charges the full reservation later
                log.exception("request %s: settlement failed", call.request_id)
        else:
            self.spend.add(row)
        if record is not None:
            state = self.usage.setdefault(record.id, KeyUsage())
            state.spent += dollars
            if state.window:
                t, _ = state.window.pop()
                state.window.append((t, usage.total_tokens))
        if call.status == 200:
            self.metrics.served(upstream, usage, dollars, latency)
            self.metrics.overhead.observe(call.overhead)
        else:
            self.metrics.requests.labels(upstream or "none", str(call.status)).inc()
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %d upstream=%s route=%s tokens=%d+%d (%s) $%.6f %.1f ms%s",
                call.request_id,
                call.status,
                upstream,
                call.router_name or "-",
                usage.prompt_tokens,
                usage.completion_tokens,
                source,
                dollars,
                latency * 1000,
                f" fallback_from=[{row['fallback_from']}]" if row["fallback_from"] else "",
            )

    def log_refusal(self, exc: ProxyError, request_id: str, started: float) -> None:
        """Count and log a request refused before any upstream call."""
        self.metrics.requests.labels("none", str(exc.status)).inc()
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %d refused: %s %.1f ms",
                request_id,
                exc.status,
                exc.code,
                (time.perf_counter() - started) * 1000,
            )

    def chain(self, upstream: Upstream) -> list[Upstream]:
        """The upstream followed by its fallbacks."""
        return [upstream, *(self.upstreams[n] for n in upstream.config.fallbacks)]

    async def close(self) -> None:
        """Flush the spend log and close connections (graceful shutdown)."""
        self.ledger_writer.close()
        self.spend.close()
        if self.cache is not None:
            self.cache.close()
        for upstream in self.upstreams.values():
            await upstream.aclose()
        self.db.close()


def create_app(config: ProxyConfig, upstreams: dict[str, Upstream] | None = None) -> FastAPI:
    """The proxy as an ASGI app (run it with uvicorn)."""
    proxy = Proxy(config, upstreams)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI lifespan protocol
        refresher = asyncio.create_task(proxy.refresh_keys())
        yield
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        log.info("shutting down: flushing the spend log")
        await proxy.close()
        log.info("stopped: spend log flushed to %s", proxy.config.database_url.split("@")[-1])

    app = FastAPI(title="llm-eff router proxy", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.proxy = proxy

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "invalid_request"
        return error_response(ProxyError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(ProxyError(400, "invalid request", code="invalid_value"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        request_id = uuid.uuid4().hex[:16]
        log.error("request %s: unexpected error", request_id, exc_info=exc)
        return error_response(internal_error(request_id))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "upstreams": sorted(proxy.upstreams)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(proxy.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = list(proxy.upstreams) + [
            f"router-{r}" if rc.kind == "any" else f"router-{r}-0.5"
            for r, (_, rc) in proxy.routers.items()
        ]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "llm-eff"} for n in names
            ],
        }

    add_admin_routes(app, proxy)

    return ProxyASGI(app, proxy)


class ProxyASGI:
    """Serves `/v1/chat/completions` on a lean ASGI path; everything else goes to FastAPI."""

    def __init__(self, app: FastAPI, proxy: Proxy) -> None:
        self.app, self.proxy = app, proxy
        self.state = app.state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/v1/chat/completions"
            and scope["method"] == "POST"
        ):
            await handle_chat(self.proxy, scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _bearer(header: str) -> str:
    """The token of an `Authorization: Bearer ...` header value ('' for none)."""
    return header[7:].strip() if header.lower().startswith("bearer ") else ""
