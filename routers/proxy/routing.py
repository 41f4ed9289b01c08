"""Where a request goes: the body's `route` override, a router (`router-<name>-<threshold>`
for a two-target router, `router-<name>` for an any-technique router), or an upstream by name,
always within the body's `max_cost_per_million_tokens`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routers.base import Decision, request_text, route
from routers.proxy.validate import ProxyError
from routers.registry import parse_router_model

if TYPE_CHECKING:
    from routers.proxy.app import Proxy
    from routers.proxy.upstreams import Upstream


def router_named(proxy: Proxy, model: str) -> tuple[str, float] | None:
    """(router name, threshold) when `model` asks for one of the proxy's routers; an
    any-technique router may be asked for without a threshold (it has none)."""
    if model.startswith("router-"):
        name = model.removeprefix("router-")
        if name in proxy.routers and proxy.routers[name][1].kind == "any":
            return name, 0.0
    return parse_router_model(model)


def knows(proxy: Proxy, body: dict[str, Any]) -> bool:
    """Whether the request names a model, router or override this proxy has."""
    model, override = body["model"], body.get("route")
    if override:
        return override in proxy.upstreams
    parsed = router_named(proxy, model)
    if parsed:
        return parsed[0] in proxy.routers
    return model in proxy.upstreams or any(
        u.config.model == model for u in proxy.upstreams.values()
    )


def price_per_m(upstream: Upstream) -> float:
    """The upstream's dearer per-million-token price (what a cost cap is compared with)."""
    return max(upstream.price.prompt_per_m, upstream.price.completion_per_m)


def within_cap(upstream: Upstream, cap: float | None) -> Upstream:
    """`upstream` if it is within the cost cap; ProxyError 400 if not."""
    if cap is not None and price_per_m(upstream) > cap:
        raise ProxyError(
            400, f"no upstream within max_cost_per_million_tokens={cap:g}", code="cost_cap"
        )
    return upstream


def resolve(proxy: Proxy, body: dict[str, Any]) -> tuple[Upstream, Decision, str]:
    """(upstream, decision, router name) for a request."""
    model = body["model"]
    cap = body.get("max_cost_per_million_tokens")
    if body.get("route"):
        name = body["route"]
        if name not in proxy.upstreams:
            raise ProxyError(
                400, f"route override: unknown upstream '{name}'", code="invalid_route"
            )
        return within_cap(proxy.upstreams[name], cap), Decision(name, 1.0, "override"), "override"
    parsed = router_named(proxy, model)
    if parsed:
        router_name, threshold = parsed
        if router_name not in proxy.routers:
            known = ", ".join(sorted(proxy.routers)) or (
                "none (routers need a config naming a weak and a strong upstream)"
            )
            raise ProxyError(
                404,
                f"unknown router '{router_name}': this proxy's routers are {known}; "
                f"its models: {', '.join(sorted(proxy.upstreams))}",
                code="model_not_found",
            )
        router, rc = proxy.routers[router_name]
        if rc.kind == "any":
            target, decision = _any(proxy, router, rc, body, cap)
        else:
            decision = route(router, body, threshold, rc.strong, rc.weak)
            target = proxy.upstreams[decision.target]
            if cap is not None and price_per_m(target) > cap:
                other = proxy.upstreams[rc.weak if decision.target == rc.strong else rc.strong]
                target = within_cap(other, cap)
                decision = Decision(
                    target.name, decision.score, f"{decision.reason}; cost cap {cap:g}"
                )
        proxy.metrics.decisions.labels(router_name, target.name).inc()
        return target, decision, router_name
    upstream = proxy.upstreams.get(model) or next(
        (u for u in proxy.upstreams.values() if u.config.model == model), None
    )
    if upstream is None:
        raise ProxyError(404, f"The model '{model}' does not exist", code="model_not_found")
    return within_cap(upstream, cap), Decision(upstream.name, 0.0, "pass-through"), ""


def _any(
    proxy: Proxy, router: Any, rc: Any, body: dict[str, Any], cap: float | None
) -> tuple[Upstream, Decision]:
    """An any-technique router's choice: the target with the lowest `cost - value x P(pass)`
    among those whose upstream is within the cost cap."""
    choice = router.choose([request_text(body)])[0]
    for i in choice.ranking:
        upstream = proxy.upstreams[rc.targets[router.targets[i]]]
        if cap is None or price_per_m(upstream) <= cap:
            p = choice.pass_probability[i]
            reason = f"{router.name}: {router.targets[i]} (P(pass) {p:.2f}, ${choice.cost[i]:.6f})"
            if i != choice.index:
                reason += f"; cost cap {cap:g}"
            return upstream, Decision(upstream.name, p, reason)
    raise ProxyError(
        400, f"no upstream within max_cost_per_million_tokens={cap:g}", code="cost_cap"
    )
