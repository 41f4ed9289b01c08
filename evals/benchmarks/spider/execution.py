"""Execution accuracy on Spider's SQLite databases: run a query read-only, compare results.

Result sets compare as multisets, or as lists when the gold query orders its result; a query
runs read-only with a step budget, so a runaway prediction ends with an error, not a hang.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path


def run_query(path: Path, sql: str, max_steps: int = 2_000_000) -> list[tuple]:
    """Rows of `sql` on the database (read-only); raises sqlite3.Error on failure or overrun."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    steps = [0]

    def guard() -> int:
        steps[0] += 1
        return 1 if steps[0] > max_steps // 1000 else 0

    db.set_progress_handler(guard, 1000)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def is_ordered(sql: str) -> bool:
    """Whether the outermost query orders its result (then results compare as lists)."""
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return "order by" in sql.lower()
    return tree.args.get("order") is not None  # the outermost query orders its result


def same_result(pred: list[tuple], gold: list[tuple], ordered: bool) -> bool:
    """Result sets equal: as lists when ordered, else as multisets."""
    if ordered:
        return pred == gold
    return Counter(pred) == Counter(gold)


def execution_match(prediction: str, gold: str, path: Path) -> bool:
    """Execution accuracy for one query: False when the prediction fails to run."""
    try:
        gold_rows = run_query(path, gold)
        pred_rows = run_query(path, prediction)
    except sqlite3.Error:
        return False
    return same_result(pred_rows, gold_rows, is_ordered(gold))
