"""Complexity-aware query routing: routers score a request, `route` picks the target, and the
OpenAI-compatible proxy (`routers.proxy`) serves it."""

from routers.base import Decision, Router, request_text, route
from routers.random_router import RandomRouter
from routers.registry import make_router, parse_router_model
from routers.rules import RuleRouter

__all__ = [
    "Decision",
    "RandomRouter",
    "Router",
    "RuleRouter",
    "make_router",
    "parse_router_model",
    "request_text",
    "route",
]
