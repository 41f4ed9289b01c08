"""The one routing contract (RouteLLM's shape): a router scores a request, a controller decides.

A router's `score(request)` says how much the request needs the strong target, in [0, 1]. The
threshold and the choice of targets live outside it: `route(router, request, threshold,
strong, weak)` sends the request to `strong` when score >= threshold. Learned routers only have
to implement `score`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Decision:
    """Where a request goes, the router's score, and why."""

    target: str
    score: float
    reason: str


@runtime_checkable
class Router(Protocol):
    """Anything with a name and a `score` for an OpenAI-style chat request body."""

    name: str

    def score(self, request: dict[str, Any]) -> float:
        """How strongly the request needs the strong target, in [0, 1]."""
        ...


@runtime_checkable
class TrainableRouter(Router, Protocol):
    """A router learned from labelled prompts: `fit(texts, labels)` (labels in [0, 1]; 1: the
    strong target is needed) embeds or tokenises the texts itself and returns the router;
    `score_texts` scores many prompts at once. `routers.registry.trainable_router` builds one."""

    def fit(self, texts: list[str], labels: Any) -> TrainableRouter:
        """Learn from `texts` and their labels; returns self."""
        ...

    def score_texts(self, texts: list[str]) -> Any:
        """Scores (an array) for many prompts."""
        ...


def request_text(request: dict[str, Any] | str) -> str:
    """The text content of a chat request's messages (text parts only), joined by newlines;
    a plain string is its own text."""
    if isinstance(request, str):
        return request
    parts: list[str] = []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "\n".join(parts)


def route(
    router: Router, request: dict[str, Any], threshold: float, strong: str, weak: str
) -> Decision:
    """Send `request` to `strong` if the router's score reaches `threshold`, else to `weak`."""
    score = router.score(request)
    if score >= threshold:
        return Decision(strong, score, f"{router.name} score {score:.3f} >= {threshold:g}")
    return Decision(weak, score, f"{router.name} score {score:.3f} < {threshold:g}")
