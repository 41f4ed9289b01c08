"""Router kinds by name, and the `router-<name>-<threshold>` model-name convention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llm_eff.core.errors import UserError
from routers.base import Router, TrainableRouter
from routers.random_router import RandomRouter
from routers.rules import RuleRouter


def _trained(name: str, path: str) -> Router:
    """A router trained and saved by `routers.knn.save_router` (kNN or logistic on MiniLM)."""
    from routers.knn import load_router

    router = load_router(path)
    router.name = name
    router.score("")  # load the encoder now, not on the first request
    return router


def _any(name: str, path: str) -> Any:
    """An any-technique router saved by `llm-eff route train-any` (`routers.any_router`)."""
    from routers.any_router import load_any_router

    router = load_any_router(path)
    router.name = name
    router.choose([""])  # load the encoder now, not on the first request
    return router


KINDS: dict[str, Callable[..., Any]] = {
    "rules": RuleRouter,
    "random": RandomRouter,
    "trained": _trained,
    "any": _any,
}


def make_router(kind: str, name: str, options: dict[str, Any] | None = None) -> Router:
    """A router of `kind` named `name`, configured with `options`; UserError if unknown."""
    if kind not in KINDS:
        raise UserError(f"unknown router kind '{kind}' (known: {', '.join(sorted(KINDS))})")
    try:
        return KINDS[kind](name=name, **(options or {}))
    except TypeError as exc:
        raise UserError(f"router '{name}': bad option ({exc})") from None


def parse_router_model(model: str) -> tuple[str, float] | None:
    """('name', threshold) for 'router-<name>-<threshold>', None for any other model name."""
    if not model.startswith("router-"):
        return None
    name, sep, raw = model.removeprefix("router-").rpartition("-")
    if not sep or not name:
        return None
    try:
        threshold = float(raw)
    except ValueError:
        return None
    return name, threshold


TRAINABLE = ("knn", "logistic", "slm", "dpo")


def trainable_router(kind: str, **options: Any) -> TrainableRouter:
    """A new, untrained router of `kind` (knn, logistic: MiniLM; slm, dpo: a small LM with
    LoRA); UserError for another kind or a bad option."""
    from routers.knn import TRAINED
    from routers.slm import SMALL_LM

    classes = {**TRAINED, **SMALL_LM}
    if kind not in classes:
        raise UserError(f"unknown router '{kind}' (trainable: {', '.join(TRAINABLE)})")
    try:
        return classes[kind](**options)
    except TypeError as exc:
        raise UserError(f"router '{kind}': bad option ({exc})") from None
