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
import json
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from llm_eff.core.types import Usage
from routers.base import Decision, route
from routers.proxy.chat import handle_chat
from routers.proxy.config import ProxyConfig
from routers.proxy.store import Database, KeyRecord, KeyStore, SpendLog, find_key
from routers.proxy.upstreams import Upstream, make_upstream
from routers.proxy.validate import ProxyError
from routers.registry import make_router, parse_router_model

DEFAULT_MAX_TOKENS_ESTIMATE = 256
KEY_RELOAD_S = 5.0


@dataclass
class KeyUsage:
    """In-memory budget and rate state of one key (exact within one proxy process)."""

    spent: float = 0.0
    reserved: float = 0.0
    window: deque = field(default_factory=deque)  # (time, tokens) of the last 60 s


class Metrics:
    """Prometheus metrics of one proxy instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llm_eff_proxy_requests_total", "Requests", ["upstream", "status"], registry=r
        )
        self.latency = Histogram(
            "llm_eff_proxy_request_seconds",
            "End-to-end latency",
            ["upstream"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.overhead = Histogram(
            "llm_eff_proxy_overhead_seconds",
            "Proxy's own added time",
            registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
        )
        self.tokens = Counter(
            "llm_eff_proxy_tokens_total", "Tokens", ["upstream", "kind"], registry=r
        )
        self.dollars = Counter(
            "llm_eff_proxy_dollars_total", "Dollars spent", ["upstream"], registry=r
        )
        self.decisions = Counter(
            "llm_eff_proxy_route_decisions_total",
            "Route decisions",
            ["router", "target"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "llm_eff_proxy_upstream_errors_total", "Upstream failures", ["upstream"], registry=r
        )
        self._served: dict[str, tuple[Any, ...]] = {}

    def served(self, upstream: str, usage: Usage, dollars: float, latency: float) -> None:
        """Count one successful request (labelled children cached per upstream)."""
        children = self._served.get(upstream)
        if children is None:
            children = self._served[upstream] = (
                self.requests.labels(upstream, "200"),
                self.latency.labels(upstream),
                self.tokens.labels(upstream, "prompt"),
                self.tokens.labels(upstream, "completion"),
                self.dollars.labels(upstream),
            )
        requests, latency_hist, prompt, completion, spent = children
        requests.inc()
        latency_hist.observe(latency)
        prompt.inc(usage.prompt_tokens)
        completion.inc(usage.completion_tokens)
        spent.inc(dollars)


class Proxy:
    """State shared by the handlers: upstreams, routers, keys, budgets, spend log, metrics."""

    def __init__(self, config: ProxyConfig, upstreams: dict[str, Upstream] | None = None) -> None:
        self.config = config
        self.upstreams = upstreams or {n: make_upstream(c) for n, c in config.upstreams.items()}
        self.routers = {
            name: (make_router(rc.kind, name, rc.options), rc)
            for name, rc in config.routers.items()
        }
        self.db = Database(config.database_url)
        self.keys = KeyStore(self.db)
        self.spend = SpendLog(self.db, config.flush_interval_s)
        self.metrics = Metrics()
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
        """Every KEY_RELOAD_S, reload keys and spend in a worker thread (off the hot path)."""
        while True:
            await asyncio.sleep(KEY_RELOAD_S)
            self._apply_keys(*await asyncio.to_thread(self._fetch_keys))

    # -- request steps -------------------------------------------------------------------
    def authenticate(self, header: str) -> KeyRecord | None:
        """The caller's key record from an Authorization header value; None for anonymous use
        where keys are optional."""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token or (
            self.config.admin_key and hmac.compare_digest(token, self.config.admin_key)
        ):
            if self.config.require_keys and not token:
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

    def resolve(self, body: dict[str, Any]) -> tuple[Upstream, Decision, str]:
        """(upstream, decision, router name) for a request."""
        model = body["model"]
        cap = body.get("max_cost_per_million_tokens")
        if body.get("route"):
            name = body["route"]
            if name not in self.upstreams:
                raise ProxyError(
                    400, f"route override: unknown upstream '{name}'", code="invalid_route"
                )
            return (
                self._within_cap(self.upstreams[name], cap),
                Decision(name, 1.0, "override"),
                "override",
            )
        parsed = parse_router_model(model)
        if parsed:
            router_name, threshold = parsed
            if router_name not in self.routers:
                raise ProxyError(404, f"unknown router '{router_name}'", code="model_not_found")
            router, rc = self.routers[router_name]
            decision = route(router, body, threshold, rc.strong, rc.weak)
            target = self.upstreams[decision.target]
            if cap is not None and self._price_per_m(target) > cap:
                other = self.upstreams[rc.weak if decision.target == rc.strong else rc.strong]
                target = self._within_cap(other, cap)
                decision = Decision(
                    target.name, decision.score, f"{decision.reason}; cost cap {cap:g}"
                )
            self.metrics.decisions.labels(router_name, target.name).inc()
            return target, decision, router_name
        upstream = self.upstreams.get(model) or next(
            (u for u in self.upstreams.values() if u.config.model == model), None
        )
        if upstream is None:
            raise ProxyError(404, f"The model '{model}' does not exist", code="model_not_found")
        return self._within_cap(upstream, cap), Decision(upstream.name, 0.0, "pass-through"), ""

    def _price_per_m(self, upstream: Upstream) -> float:
        return max(upstream.price.prompt_per_m, upstream.price.completion_per_m)

    def _within_cap(self, upstream: Upstream, cap: float | None) -> Upstream:
        if cap is not None and self._price_per_m(upstream) > cap:
            raise ProxyError(
                400, f"no upstream within max_cost_per_million_tokens={cap:g}", code="cost_cap"
            )
        return upstream

    def admit(self, record: KeyRecord | None, upstream: Upstream, body: dict[str, Any]) -> float:
        """Check rate limits and reserve the request's worst-case cost; returns the reservation."""
        if record is None:
            return 0.0
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
        text_chars = sum(len(str(m.get("content") or "")) for m in body["messages"])
        max_out = (
            body.get("max_tokens")
            or body.get("max_completion_tokens")
            or DEFAULT_MAX_TOKENS_ESTIMATE
        )
        estimate = upstream.cost(
            Usage(prompt_tokens=text_chars // 3 + 8, completion_tokens=int(max_out))
        ).dollars
        if (
            record.budget_usd is not None
            and state.spent + state.reserved + estimate > record.budget_usd
        ):
            raise ProxyError(
                429, "budget exhausted for this key", "insufficient_quota", "insufficient_quota"
            )
        state.reserved += estimate
        state.window.append((now, 0))
        return estimate

    def settle(
        self, record: KeyRecord | None, reserved: float, dollars: float, tokens: int
    ) -> None:
        """Replace a reservation by the real cost."""
        if record is None:
            return
        state = self.usage[record.id]
        state.reserved -= reserved
        state.spent += dollars
        if state.window:
            t, _ = state.window.pop()
            state.window.append((t, tokens))

    def log(
        self,
        record: KeyRecord | None,
        body: dict[str, Any],
        upstream: str,
        router: str,
        decision: Decision | None,
        usage: Usage,
        dollars: float,
        started: float,
        overhead_s: float,
        status: int,
        error: str | None = None,
    ) -> None:
        """Queue the spend row and update metrics."""
        latency = time.perf_counter() - started
        self.spend.add(
            {
                "ts": time.time(),
                "key_id": record.id if record else None,
                "requested_model": body.get("model"),
                "upstream": upstream,
                "router": router,
                "score": decision.score if decision else None,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost": dollars,
                "latency_ms": latency * 1000,
                "overhead_ms": overhead_s * 1000,
                "status": status,
                "error": error,
            }
        )
        if status == 200:
            self.metrics.served(upstream, usage, dollars, latency)
            self.metrics.overhead.observe(overhead_s)
        else:
            self.metrics.requests.labels(upstream or "none", str(status)).inc()

    def chain(self, upstream: Upstream) -> list[Upstream]:
        """The upstream followed by its fallbacks."""
        return [upstream, *(self.upstreams[n] for n in upstream.config.fallbacks)]

    async def close(self) -> None:
        """Flush the spend log and close connections (graceful shutdown)."""
        self.spend.close()
        for upstream in self.upstreams.values():
            await upstream.aclose()
        self.db.close()


def _error(exc: ProxyError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


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
        await proxy.close()

    app = FastAPI(title="llm-eff router proxy", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.proxy = proxy

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "upstreams": sorted(proxy.upstreams)}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(proxy.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = list(proxy.upstreams) + [f"router-{r}-0.5" for r in proxy.routers]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "llm-eff"} for n in names
            ],
        }

    def require_admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        admin = config.admin_key
        if not admin or not token or not hmac.compare_digest(token, admin):
            raise ProxyError(401, "admin key required", "authentication_error", "invalid_admin_key")

    @app.post("/admin/keys")
    async def create_key(request: Request) -> Response:
        try:
            require_admin(request)
            try:
                spec = json.loads(await request.body() or b"{}")
            except json.JSONDecodeError:
                raise ProxyError(
                    400, "request body is not valid JSON", code="invalid_json"
                ) from None
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise ProxyError(400, "'name' is required", code="invalid_value")
            plaintext, record = proxy.keys.create(
                spec["name"], spec.get("budget_usd"), spec.get("rpm"), spec.get("tpm")
            )
        except ProxyError as exc:
            return _error(exc)
        proxy.records[record.key_hash] = record
        return JSONResponse(
            {
                "id": record.id,
                "key": plaintext,
                "name": record.name,
                "budget_usd": record.budget_usd,
            },
            status_code=201,
        )

    @app.get("/admin/keys")
    async def list_keys(request: Request) -> Response:
        try:
            require_admin(request)
        except ProxyError as exc:
            return _error(exc)
        return JSONResponse(
            {
                "data": [
                    {
                        "id": r.id,
                        "name": r.name,
                        "budget_usd": r.budget_usd,
                        "rpm": r.rpm,
                        "tpm": r.tpm,
                        "revoked": r.revoked is not None,
                        "spent_usd": proxy.usage.get(r.id, KeyUsage()).spent,
                    }
                    for r in proxy.keys.all()
                ]
            }
        )

    @app.delete("/admin/keys/{key_id}")
    async def revoke_key(key_id: str, request: Request) -> Response:
        try:
            require_admin(request)
            if not proxy.keys.revoke(key_id):
                raise ProxyError(404, f"no active key '{key_id}'", code="not_found")
        except ProxyError as exc:
            return _error(exc)
        proxy.reload_keys()
        return JSONResponse({"id": key_id, "revoked": True})

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
