"""The fine-tuning comparison table: one JSONL row per run, rendered as Markdown or rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_eff.core.atomic import atomic_write
from llm_eff.core.errors import UserError

COLUMNS = [
    ("method", "method"),
    ("model", "model"),
    ("trainable_params", "trainable params"),
    ("peak_train_mb", "peak train MiB"),
    ("step_s", "step s"),
    ("tokens_per_s", "tokens/s"),
    ("adapter_bytes", "adapter size"),
    ("score", "score"),
    ("heldout_loss", "held-out loss"),
    ("device", "device"),
]


def human_bytes(n: float) -> str:
    """1.2 MB-style size."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def cell(key: str, value: Any, row: dict[str, Any] | None = None) -> str:
    """A row value formatted for display (the score with the number of examples behind it)."""
    if value is None:
        return "-"
    if key == "score" and isinstance(value, float) and value == value and row:
        n = row.get("n_scored")
        return f"{value:.1%}" + (f" (n={n})" if n is not None else "")
    if key == "trainable_params":
        return f"{value:,}"
    if key == "adapter_bytes":
        return human_bytes(value)
    if key == "score" and isinstance(value, float):
        return "-" if value != value else f"{value:.1%}"
    if key.endswith("_loss") and isinstance(value, float):
        return f"{value:.3f}"  # 5.0028 is 5.003, not 5
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def append_row(path: str | Path, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Append `row` to the JSONL table at `path`; returns all rows."""
    path = Path(path)
    rows = read_rows(path) if path.exists() else []
    rows.append(row)
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a table file; UserError on a malformed line."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(f"{path}:{n}: not a JSON line") from None
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown."""
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    body = ["| " + " | ".join(cell(k, r.get(k), r) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def rich_table(rows: list[dict[str, Any]]) -> Any:
    """The table for the terminal."""
    from rich.table import Table

    table = Table(*(title for _, title in COLUMNS))
    for r in rows:
        table.add_row(*(cell(k, r.get(k), r) for k, _ in COLUMNS))
    return table
