"""Spider text-to-SQL (Yu et al., 2018) in its official file format: `dev.json` /
`train_spider.json` (db_id, question, query) and `tables.json` (schemas).

Examples become prompt/completion pairs (question plus a compact schema to the gold SQL), split
by database so that the test questions come from databases never seen in training. Scoring is
exact match after sqlglot normalisation (`llm_eff.core.match.sql_match`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError

INSTRUCTION = "Write one SQLite query that answers the question. Reply with the SQL only."


@dataclass(frozen=True)
class SpiderExample:
    """One question on one database, with its gold SQL."""

    db_id: str
    question: str
    query: str


def schema_text(entry: dict[str, Any]) -> str:
    """A database schema as one line per table: `table(column type, ...)`."""
    tables: list[list[str]] = [[] for _ in entry["table_names_original"]]
    for (table, column), kind in zip(
        entry["column_names_original"], entry["column_types"], strict=True
    ):
        if table >= 0:
            tables[table].append(f"{column} {kind}")
    return "\n".join(
        f"{name}({', '.join(cols)})"
        for name, cols in zip(entry["table_names_original"], tables, strict=True)
    )


def load_schemas(tables_json: str | Path) -> dict[str, str]:
    """db_id -> schema text from a Spider `tables.json`."""
    path = Path(tables_json)
    if not path.is_file():
        raise UserError(f"Spider tables file not found: {path}")
    return {entry["db_id"]: schema_text(entry) for entry in json.loads(path.read_text())}


def load_spider(questions_json: str | Path) -> list[SpiderExample]:
    """Examples from a Spider questions file (dev.json, train_spider.json)."""
    path = Path(questions_json)
    if not path.is_file():
        raise UserError(f"Spider questions file not found: {path}")
    try:
        rows = json.loads(path.read_text())
        return [SpiderExample(r["db_id"], r["question"], r["query"]) for r in rows]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a Spider questions file ({exc})") from None


def prompt(example: SpiderExample, schemas: dict[str, str]) -> str:
    """The model's prompt for one question."""
    if example.db_id not in schemas:
        raise UserError(f"no schema for database '{example.db_id}' in tables.json")
    return (
        f"Database schema:\n{schemas[example.db_id]}\n\nQuestion: {example.question}\n{INSTRUCTION}"
    )


def split_by_database(
    examples: list[SpiderExample], test_fraction: float = 0.3, seed: int = 0
) -> tuple[list[SpiderExample], list[SpiderExample]]:
    """(train, test) with whole databases held out until `test_fraction` of the questions are."""
    dbs = sorted({e.db_id for e in examples})
    random.Random(seed).shuffle(dbs)
    held: set[str] = set()
    count = 0
    for db in dbs:
        if count >= test_fraction * len(examples) or len(held) == len(dbs) - 1:
            break
        held.add(db)
        count += sum(e.db_id == db for e in examples)
    return [e for e in examples if e.db_id not in held], [e for e in examples if e.db_id in held]


def to_prompt_completion(
    examples: list[SpiderExample], schemas: dict[str, str]
) -> list[dict[str, str]]:
    """Rows in `llm-eff finetune`'s prompt/completion format."""
    return [{"prompt": prompt(e, schemas), "completion": e.query} for e in examples]


def load_spider_dev(directory: str | None, cache_dir: str | Path | None = None) -> Any:
    """Spider dev as an execution-accuracy benchmark over databases built from `tables.json`.

    `directory` holds `dev.json` and `tables.json` (your copy of Spider). The databases are
    built once (`spider.db.build_databases`) under the llm-eff cache. Systems answer directly
    (`--system MODEL`) or through a pipeline (`--system MODEL:pipeline=basic|intermediate|
    advanced|cascade`, see `evals.benchmarks.spider.pipelines`).
    """
    import hashlib

    from evals.benchmarks.base import Benchmark
    from evals.benchmarks.spider.db import build_databases
    from evals.benchmarks.spider.execution import execution_match, run_query
    from evals.benchmarks.spider.pipelines import solve
    from llm_eff.core.match import extract_sql
    from llm_eff.core.types import Task
    from llm_eff.models.embedded import cache_root
    from llm_eff.sandbox.outcome import TestOutcome

    if not directory:
        raise UserError(
            "spider-dev needs your Spider folder: spider-dev:DIR (dev.json, tables.json)"
        )
    root = Path(directory)
    tables, questions = root / "tables.json", root / "dev.json"
    for path in (tables, questions):
        if not path.is_file():
            raise UserError(f"Spider file not found: {path}")
    digest = hashlib.sha256(tables.read_bytes() + questions.read_bytes()).hexdigest()[:12]
    dbs = build_databases(
        tables, questions, Path(cache_dir or cache_root() / "spider-dbs") / digest
    )
    schemas = load_schemas(tables)
    tasks = [
        Task(
            id=f"spider-dev/{i}",
            prompt=prompt(example, schemas),
            language="sql",
            reference=example.query,
            metadata={
                "category": example.db_id,
                "question": example.question,
                "schema": schemas[example.db_id],
                "db_path": str(dbs[example.db_id]),
            },
        )
        for i, example in enumerate(load_spider(questions))
    ]

    def score(task: Task, output: str) -> TestOutcome:
        sql = extract_sql(output)
        db = Path(task.metadata["db_path"])
        if not sql:
            return TestOutcome(False, "no_code", message="no SQL in the answer")
        try:
            run_query(db, sql)
        except Exception as exc:  # noqa: BLE001 - any SQLite failure is the model's
            return TestOutcome(False, "sql_error", 0, 1, message=str(exc))
        ok = execution_match(sql, task.reference, db)
        return TestOutcome(ok, "passed" if ok else "wrong_result", int(ok), 1)

    return Benchmark(
        name="spider-dev",
        tasks=tasks,
        scorer=score,
        reference=lambda task: task.reference,
        description=f"Spider dev by execution ({len(tasks)} questions, {len(dbs)} databases)",
        program=lambda task, output: extract_sql(output),
        solve=solve,
    )
