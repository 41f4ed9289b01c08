"""Answer matching: exact match after whitespace normalisation, and SQL exact match after
normalising both queries with sqlglot (SQLite dialect)."""

from __future__ import annotations

import re
from collections.abc import Callable

_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S | re.I)


def normalize_text(text: str) -> str:
    """Collapse whitespace and strip."""
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> bool:
    """True when the texts agree up to whitespace."""
    return normalize_text(prediction) == normalize_text(reference)


def extract_sql(text: str) -> str:
    """The SQL query in a model's answer: a fenced block if any, else the text, cut at the
    first ';' or blank line."""
    match = _FENCE.search(text)
    body = match.group(1) if match else text
    body = body.strip().split("\n\n", 1)[0]
    return body.split(";", 1)[0].strip()


def normalize_sql(sql: str) -> str:
    """A canonical form of a SQLite query (sqlglot round trip, lower case, single spaces);
    falls back to lower-cased whitespace normalisation when sqlglot cannot parse it."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    text = sql.strip().rstrip(";")
    try:
        tree = sqlglot.parse_one(text, read="sqlite")
        text = tree.sql(dialect="sqlite", normalize=True, pretty=False)
    except (SqlglotError, ValueError, RecursionError):
        pass
    return normalize_text(text.replace('"', "'")).lower()


def sql_match(prediction: str, reference: str) -> bool:
    """Exact match of the normalised queries (the answer's SQL extracted first)."""
    predicted = extract_sql(prediction)
    return bool(predicted) and normalize_sql(predicted) == normalize_sql(reference)


SCORERS: dict[str, Callable[[str, str], bool]] = {"exact": exact_match, "sql": sql_match}
