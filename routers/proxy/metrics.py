"""Prometheus metrics of one proxy instance (served at `/metrics`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from llm_eff.core.types import Usage


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
        self.cache = Counter(
            "llm_eff_proxy_cache_total",
            "Response cache lookups (hit-exact, hit-semantic, miss)",
            ["result"],
            registry=r,
        )
        self.cache_saved = Counter(
            "llm_eff_proxy_cache_saved_dollars_total",
            "Upstream dollars not spent thanks to cache hits",
            registry=r,
        )
        self._served: dict[str, tuple[Any, ...]] = {}

    def cached(self, kind: str, saved: float, latency: float) -> None:
        """Count one request answered from the cache."""
        self.cache.labels(f"hit-{kind}").inc()
        self.cache_saved.inc(saved)
        self.requests.labels("cache", "200").inc()
        self.latency.labels("cache").observe(latency)

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
