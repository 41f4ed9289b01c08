"""Build Spider's SQLite databases from `tables.json`, filled so that gold queries return rows.

Spider's dev databases are not always at hand; the schemas are (`tables.json`). For each
database this module creates the tables (original names and types) and fills them with
generated rows:

- literals that the database's gold queries compare columns with (`col = 'x'`, `col > 5`,
  `LIKE '%x%'`, `IN (...)`, `BETWEEN`) are harvested with sqlglot and resolved to their table;
- every table gets `base_rows` rows drawn from small value pools (the literals, their
  neighbours for range comparisons, and a few generated values), so GROUP BY / HAVING
  COUNT(*) > 1 find groups and a dropped WHERE changes the answer;
- every gold query gets `seed_rows` dedicated rows in each table it reads, holding all of its
  literals at once (so conjunctions hold), with foreign keys pointing at the query's dedicated
  rows in the parent table (so joins connect them);
- foreign-key columns otherwise take values of the referenced column, so joins match.

Execution accuracy itself is in `execution.py`. `check_databases` reports the builder's
quality: gold queries that run, that return a non-trivial result, and how often simple wrong
variants (WHERE dropped, another column, another aggregate) are told apart from the gold query.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.benchmarks.spider.execution import is_ordered, run_query, same_result
from llm_eff.core.errors import UserError

SQL_TYPES = {"number": "NUMERIC", "text": "TEXT", "time": "TEXT", "boolean": "INTEGER"}


@dataclass
class Table:
    """One table of a schema: its columns and types, and foreign keys to other tables."""

    name: str
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    foreign: dict[str, tuple[str, str]] = field(default_factory=dict)  # col -> (table, col)
    primary: str | None = None


def parse_schema(entry: dict[str, Any]) -> dict[str, Table]:
    """Tables of one `tables.json` entry (lower-cased names as keys); UserError if malformed."""
    try:
        tables = {n.lower(): Table(n) for n in entry["table_names_original"]}
        names = list(tables)
        columns = entry["column_names_original"]
        for (t, col), kind in zip(columns, entry["column_types"], strict=True):
            if t >= 0:
                tables[names[t]].columns.append(col)
                tables[names[t]].types.append(kind)
        for pk in entry.get("primary_keys", []):
            pk = pk[0] if isinstance(pk, list) else pk
            t, col = columns[pk]
            tables[names[t]].primary = tables[names[t]].primary or col
        for child, parent in entry.get("foreign_keys", []):
            (ct, ccol), (pt, pcol) = columns[child], columns[parent]
            if ct != pt:
                tables[names[ct]].foreign[ccol.lower()] = (names[pt], pcol)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        db = entry.get("db_id", "?") if isinstance(entry, dict) else "?"
        raise UserError(f"malformed schema for database {db}: {exc!r}") from None
    return tables


def _literal(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        value = _literal(node.this)
        return -value if isinstance(value, int | float) else None
    if not isinstance(node, exp.Literal):
        return None
    if node.is_string:
        return node.this
    text = node.this
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def harvest(query: str, tables: dict[str, Table]) -> dict[str, dict[str, list[Any]]]:
    """table -> column -> literals one gold query compares that column with (sqlglot)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(query, read="sqlite")
    except sqlglot.errors.ParseError:
        return {}
    alias: dict[str, str] = {}
    used: list[str] = []
    for t in tree.find_all(exp.Table):
        name = t.name.lower()
        if name in tables:
            used.append(name)
            alias[(t.alias or t.name).lower()] = name

    def real_column(node: Any) -> bool:
        """False for a double-quoted string that sqlglot reads as a column ("Aberdeen")."""
        if not isinstance(node, exp.Column):
            return False
        return bool(node.table) or any(
            node.name.lower() in (c.lower() for c in tables[name].columns) for name in used
        )

    def value(node: Any) -> Any:
        if isinstance(node, exp.Column) and not real_column(node):
            return node.name
        return _literal(node)

    def owner(column: exp.Column) -> str | None:
        if column.table and column.table.lower() in alias:
            return alias[column.table.lower()]
        for name in used:
            if column.name.lower() in (c.lower() for c in tables[name].columns):
                return name
        return None

    found: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))

    def add(column: Any, values: list[Any]) -> None:
        if not real_column(column):
            return
        table = owner(column)
        if table is None:
            return
        real = next(c for c in tables[table].columns if c.lower() == column.name.lower())
        found[table][real].extend(v for v in values if v is not None)

    for node in tree.walk():
        if isinstance(node, exp.EQ | exp.NEQ):
            add(node.this, [value(node.expression)])
            add(node.expression, [value(node.this)])
        elif isinstance(node, exp.GT | exp.GTE):
            v = value(node.expression)
            add(node.this, [v + 1, v - 1, v] if isinstance(v, int | float) else [v])
        elif isinstance(node, exp.LT | exp.LTE):
            v = value(node.expression)
            add(node.this, [v - 1, v + 1, v] if isinstance(v, int | float) else [v])
        elif isinstance(node, exp.Like):
            v = value(node.expression)
            add(node.this, [v.replace("%", "").replace("_", " ")] if isinstance(v, str) else [])
        elif isinstance(node, exp.In):
            add(node.this, [value(e) for e in node.expressions])
        elif isinstance(node, exp.Between):
            low, high = value(node.args.get("low")), value(node.args.get("high"))
            if isinstance(low, int | float) and isinstance(high, int | float):
                add(
                    node.this,
                    [
                        (low + high) / 2 if isinstance(low, float) else (low + high) // 2,
                        low - 1,
                        high + 1,
                    ],
                )
    return {t: dict(cols) for t, cols in found.items()}


def _order(tables: dict[str, Table]) -> list[str]:
    """Parents before children where the foreign keys allow (cycles broken arbitrarily)."""
    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done or name in visiting:
            return
        visiting.add(name)
        for parent, _ in tables[name].foreign.values():
            if parent != name:
                visit(parent)
        done.append(name)

    for name in tables:
        visit(name)
    return done


NUMERIC_HINTS = (
    "age",
    "year",
    "price",
    "amount",
    "number",
    "num",
    "count",
    "salary",
    "rank",
    "score",
    "weight",
    "height",
    "size",
    "population",
    "capacity",
    "budget",
    "total",
    "rating",
    "percent",
    "share",
    "cost",
    "mpg",
    "horsepower",
)


def _generated(column: str, kind: str, k: int) -> Any:
    if kind in ("number", "boolean"):
        return k if kind == "number" else k % 2
    if any(hint in column.lower() for hint in NUMERIC_HINTS):
        return str(10 * k + k % 3)  # text column holding numbers, as Spider's often do
    if kind == "time":
        return f"20{k % 20:02d}-0{1 + k % 9}-1{k % 10}"
    return f"{column} {k}"


def fill_database(
    path: Path,
    tables: dict[str, Table],
    queries: list[str],
    base_rows: int = 30,
    seed_rows: int = 3,
    seed: int = 0,
) -> None:
    """Create and fill one SQLite database at `path` (module docstring)."""
    rng = random.Random(seed)
    per_query = [harvest(q, tables) for q in queries]
    pools: dict[tuple[str, str], list[Any]] = {}
    for t in tables.values():
        for col, kind in zip(t.columns, t.types, strict=True):
            literals = [v for h in per_query for v in h.get(t.name.lower(), {}).get(col, [])]
            pools[(t.name.lower(), col)] = list(dict.fromkeys(literals)) + [
                _generated(col, kind, k) for k in range(1, 7)
            ]
    rows: dict[str, list[dict[str, Any]]] = {}
    dedicated: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for name in _order(tables):
        t = tables[name]
        made: list[dict[str, Any]] = []
        plans: list[tuple[int | None, dict[str, Any]]] = [(None, {}) for _ in range(base_rows)]
        for qi, h in enumerate(per_query):
            if name in h:
                values = {c: vals[0] for c, vals in h[name].items() if vals}
                plans += [(qi, values)] * seed_rows
        for counter, (qi, values) in enumerate(plans):
            row: dict[str, Any] = {}
            for col, kind in zip(t.columns, t.types, strict=True):
                if col in values:
                    row[col] = values[col]
                elif col.lower() in t.foreign:
                    parent, pcol = t.foreign[col.lower()]
                    mine = dedicated.get((parent, qi)) if qi is not None else None
                    source = mine or rows.get(parent) or []
                    row[col] = rng.choice(source)[pcol] if source else counter + 1
                elif col == t.primary:
                    row[col] = counter + 1 if kind == "number" else f"{col} {counter + 1}"
                else:
                    row[col] = rng.choice(pools[(name, col)])
            made.append(row)
            if qi is not None:
                dedicated.setdefault((name, qi), []).append(row)
        rows[name] = made
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        for name, t in tables.items():
            if name.startswith("sqlite_"):  # SQLite's own (e.g. sqlite_sequence)
                continue
            cols = ", ".join(
                f'"{c}" {SQL_TYPES.get(k, "TEXT")}' for c, k in zip(t.columns, t.types, strict=True)
            )
            db.execute(f'CREATE TABLE "{t.name}" ({cols})')
            marks = ", ".join("?" for _ in t.columns)
            db.executemany(
                f'INSERT INTO "{t.name}" VALUES ({marks})',
                [[r[c] for c in t.columns] for r in rows[name]],
            )
    tmp.replace(path)


def build_databases(
    tables_json: str | Path, questions_json: str | Path, out_dir: str | Path, seed: int = 0
) -> dict[str, Path]:
    """db_id -> SQLite path for every database the questions use (built once, then reused)."""
    tables_path, questions_path = Path(tables_json), Path(questions_json)
    for p in (tables_path, questions_path):
        if not p.is_file():
            raise UserError(f"Spider file not found: {p}")
    try:
        schemas = {e["db_id"]: e for e in json.loads(tables_path.read_text())}
        questions = json.loads(questions_path.read_text())
        by_db: dict[str, list[str]] = defaultdict(list)
        for q in questions:
            by_db[q["db_id"]].append(q["query"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"malformed Spider file: {exc!r}") from None
    out = Path(out_dir)
    paths = {}
    for db_id, queries in sorted(by_db.items()):
        if db_id not in schemas:
            raise UserError(f"{questions_path}: database {db_id} is not in {tables_path}")
        path = out / f"{db_id}.sqlite"
        if not path.is_file():
            fill_database(path, parse_schema(schemas[db_id]), queries, seed=seed)
        paths[db_id] = path
    return paths


def nontrivial(rows: list[tuple]) -> bool:
    """A result that says something: a row with a value other than NULL and 0."""
    return any(v not in (None, 0) for row in rows for v in row)


def wrong_variants(sql: str, tables: dict[str, Table]) -> list[str]:
    """Simple wrong versions of a query: WHERE dropped, another column, another aggregate."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return []
    out = []
    if isinstance(tree, exp.Select) and tree.args.get("where") is not None:
        dropped = tree.copy()
        dropped.set("where", None)
        out.append(dropped.sql(dialect="sqlite"))
    if isinstance(tree, exp.Select):
        for i, projection in enumerate(tree.expressions):
            col = projection if isinstance(projection, exp.Column) else None
            if col is None:
                continue
            table = next(
                (t for t in tables.values() if col.name.lower() in (c.lower() for c in t.columns)),
                None,
            )
            others = [c for c in (table.columns if table else []) if c.lower() != col.name.lower()]
            if others:
                swapped = tree.copy()
                swapped.expressions[i].set("this", exp.to_identifier(others[0]))
                out.append(swapped.sql(dialect="sqlite"))
            break
        swaps = {exp.Max: exp.Min, exp.Min: exp.Max, exp.Avg: exp.Sum, exp.Sum: exp.Avg}
        agg = next((n for n in tree.expressions if type(n) in swaps), None)
        if agg is not None:
            changed = tree.copy()
            target = next(n for n in changed.expressions if type(n) in swaps)
            target.replace(swaps[type(target)](this=target.this.copy()))
            out.append(changed.sql(dialect="sqlite"))
    return out


@dataclass
class BuilderReport:
    """How well the built databases serve execution accuracy."""

    queries: int
    ran: int
    nontrivial: int
    variants: int
    told_apart: int
    failures: list[str] = field(default_factory=list)


def check_databases(
    tables_json: str | Path, questions_json: str | Path, paths: dict[str, Path]
) -> BuilderReport:
    """Run every gold query and its wrong variants on the built databases."""
    schemas = {e["db_id"]: parse_schema(e) for e in json.loads(Path(tables_json).read_text())}
    report = BuilderReport(0, 0, 0, 0, 0)
    for q in json.loads(Path(questions_json).read_text()):
        report.queries += 1
        path = paths[q["db_id"]]
        try:
            gold = run_query(path, q["query"])
        except sqlite3.Error as exc:
            report.failures.append(f"{q['db_id']}: {q['query']} ({exc})")
            continue
        report.ran += 1
        report.nontrivial += nontrivial(gold)
        ordered = is_ordered(q["query"])
        for variant in wrong_variants(q["query"], schemas[q["db_id"]]):
            try:
                rows = run_query(path, variant)
            except sqlite3.Error:
                continue  # a variant that does not run is told apart trivially; not counted
            report.variants += 1
            report.told_apart += not same_result(rows, gold, ordered)
    return report
