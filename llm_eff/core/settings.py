"""Settings dataclasses from plain mappings (YAML, JSON, CLI), with clear errors."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

from llm_eff.core.errors import UserError

T = TypeVar("T")


def from_mapping(cls: type[T], values: dict[str, Any], what: str) -> T:
    """`cls(**values)`; UserError naming unknown keys, and values of the wrong kind.

    Values are converted to the type of the field's default (int, float, str, bool), so
    "0.25" from a file becomes 0.25; `what` names the settings in messages.
    """
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        names, allowed = ", ".join(unknown), ", ".join(sorted(known))
        raise UserError(f"unknown {what}(s): {names} (known: {allowed})")
    converted = {}
    for key, value in values.items():
        default = known[key].default
        kind = type(default) if default is not MISSING and default is not None else None
        try:
            converted[key] = kind(value) if kind in (int, float, str) else value
        except (TypeError, ValueError):
            raise UserError(f"{what} {key}: expected {kind.__name__}, got {value!r}") from None
    return cls(**converted)
