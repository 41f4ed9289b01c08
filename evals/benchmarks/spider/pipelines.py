"""Text-to-SQL pipelines of rising cost (EllieSQL's routing targets), on any backend.

All three share one schema-linking call (which tables does the question need?), then:

    basic         one generation call
    intermediate  decompose the question into sub-questions, generate, run the query on the
                  database, and self-correct once from the SQLite error or an empty result
    advanced      the intermediate steps plus example question/SQL pairs the model writes for
                  this schema, then three sampled candidates and the greedy one, chosen by
                  agreement of their results
    cascade       basic, escalating to intermediate and then advanced only while the query
                  fails to run or returns no rows (FrugalGPT-style, execution as the verifier)

Every model call's tokens and dollars add up into the one `Completion` a pipeline returns,
so cost-of-pass and TEP see the whole pipeline. A batch of questions runs on a thread pool
over a `BatchingBackend`, so the calls of different questions are generated together.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from evals.systems import SystemKind, SystemSpec, as_model
from llm_eff.backends.base import Backend, Completion, GenerationConfig, user_chat
from llm_eff.core.errors import UserError
from llm_eff.core.types import Cost, Task, Usage
from llm_eff.models.embedded import NAME as EMBEDDED

PIPELINES = ("basic", "intermediate", "advanced", "cascade")


@dataclass
class Caller:
    """Model calls on one backend, with their usage and cost summed."""

    backend: Backend
    config: GenerationConfig
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    calls: int = 0

    def ask(self, prompt: str, n: int = 1, temperature: float | None = None) -> list[str]:
        """`n` replies to `prompt` (greedy unless `temperature`)."""
        chosen = self.config.temperature if temperature is None else temperature
        config = replace(self.config, n=n, stop=(), temperature=chosen)
        replies = self.backend.generate([user_chat(prompt)], config)[0]
        for r in replies:
            self.usage, self.cost = self.usage + r.usage, self.cost + r.cost
        self.calls += 1
        return [r.text for r in replies]


def run_sql(db_path: str | Path, sql: str) -> tuple[list[tuple] | None, str]:
    """(rows, "") or (None, error message) for `sql` on the database, read-only."""
    from evals.benchmarks.spider.execution import run_query

    if not sql.strip():
        return None, "empty query"
    try:
        return run_query(Path(db_path), sql), ""
    except sqlite3.Error as exc:
        return None, str(exc)


def link_schema(caller: Caller, question: str, schema: str) -> str:
    """The schema lines of the tables the model names (all of them if it names none)."""
    lines = schema.splitlines()
    names = [line.split("(", 1)[0].strip() for line in lines]
    reply = caller.ask(
        f"Database schema:\n{schema}\n\nQuestion: {question}\n"
        "Which tables are needed to answer it? Reply with the table names, comma-separated."
    )[0]
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", reply)}
    keep = [line for line, name in zip(lines, names, strict=True) if name.lower() in words]
    return "\n".join(keep) if keep else schema


def _sql_prompt(question: str, schema: str, hints: str = "") -> str:
    extra = f"\n{hints.strip()}\n" if hints.strip() else ""
    return (
        f"Database schema:\n{schema}\n{extra}\nQuestion: {question}\n"
        "Write one SQLite query that answers the question. Reply with the SQL only."
    )


def _extract(text: str) -> str:
    from llm_eff.core.match import extract_sql

    return extract_sql(text)


def basic(caller: Caller, task: Task, schema: str) -> str:
    """One generation call on the linked schema."""
    return _extract(caller.ask(_sql_prompt(task.metadata["question"], schema))[0])


def _decompose(caller: Caller, question: str, schema: str) -> str:
    return caller.ask(
        f"Database schema:\n{schema}\n\nQuestion: {question}\n"
        "Break the question into short sub-questions, one per line."
    )[0]


def _correct(caller: Caller, task: Task, schema: str, sql: str) -> str:
    rows, error = run_sql(task.metadata["db_path"], sql)
    if rows:
        return sql
    problem = f"It fails with: {error}" if error else "It returns no rows."
    fixed = _extract(
        caller.ask(
            f"{_sql_prompt(task.metadata['question'], schema)}\n\nThis query was tried:\n{sql}\n"
            f"{problem}\nWrite a corrected SQLite query. Reply with the SQL only."
        )[0]
    )
    return fixed if run_sql(task.metadata["db_path"], fixed)[0] is not None else sql


def intermediate(caller: Caller, task: Task, schema: str) -> str:
    """Decomposition, generation, one self-correction from execution."""
    meta = task.metadata
    steps = _decompose(caller, meta["question"], schema)
    sql = _extract(caller.ask(_sql_prompt(meta["question"], schema, f"Sub-questions:\n{steps}"))[0])
    return _correct(caller, task, schema, sql)


def advanced(caller: Caller, task: Task, schema: str, candidates: int = 3) -> str:
    """The intermediate steps plus self-written examples and candidates chosen by agreement."""
    meta = task.metadata
    steps = _decompose(caller, meta["question"], schema)
    examples = caller.ask(
        f"Database schema:\n{schema}\n\nWrite two example questions about this database, each "
        "followed by its SQLite query."
    )[0]
    prompt = _sql_prompt(
        meta["question"], schema, f"Examples:\n{examples}\nSub-questions:\n{steps}"
    )
    texts = caller.ask(prompt) + caller.ask(prompt, n=candidates, temperature=0.7)
    greedy, sampled = texts[0], texts[1:]
    queries = [_correct(caller, task, schema, _extract(greedy))] + [_extract(t) for t in sampled]
    results = [run_sql(meta["db_path"], q)[0] for q in queries]
    votes = Counter(
        frozenset(Counter(r).items())
        for r in results
        if r  # non-empty results that ran
    )
    if not votes:
        return queries[0]
    best = votes.most_common(1)[0][0]
    return next(
        q
        for q, r in zip(queries, results, strict=True)
        if r and frozenset(Counter(r).items()) == best
    )


def cascade(caller: Caller, task: Task, schema: str) -> str:
    """Basic, then intermediate, then advanced, stopping at the first query that runs and
    returns rows (the verifier is execution: FrugalGPT's cascade with a free scorer)."""
    sql = ""
    for step in (basic, intermediate, advanced):
        sql = step(caller, task, schema)
        if run_sql(task.metadata["db_path"], sql)[0]:
            break
    return sql


STEPS: dict[str, Callable[[Caller, Task, str], str]] = {
    "basic": basic,
    "intermediate": intermediate,
    "advanced": advanced,
    "cascade": cascade,
}


def solve(
    pipeline: str, backend: Backend, tasks: list[Task], config: GenerationConfig
) -> list[list[Completion]]:
    """Run `pipeline` on each task; one Completion each, with every call's usage and cost."""
    if pipeline not in STEPS:
        raise UserError(f"unknown SQL pipeline '{pipeline}' (use {', '.join(PIPELINES)})")
    from llm_eff.backends.batching import map_batched

    def one(task: Task, models: dict[str, Backend]) -> list[Completion]:
        caller = Caller(models["sql"], replace(config, n=1))
        schema = link_schema(caller, task.metadata["question"], task.metadata["schema"])
        sql = STEPS[pipeline](caller, task, schema)
        return [Completion(f"```sql\n{sql}\n```", caller.usage, caller.cost, "stop")]

    # each question's steps stay sequential; the questions' calls are batched together
    return map_batched(one, tasks, {"sql": backend}, calls_per_item=4)


def _alias(pipeline: str) -> SystemKind:
    """The `sql-PIPELINE[:base=MODEL]` system: `pipeline` on the embedded model or on MODEL."""
    name = f"sql-{pipeline}"

    def check(system: SystemSpec) -> SystemSpec:
        base = system.extra.get("base", EMBEDDED)
        return as_model(system, base, pipeline=pipeline, label=system.label or name)

    return SystemKind(
        name,
        f"{name}[:base=MODEL] Spider's {pipeline} pipeline (named as written)",
        options={"base": str},
        body=False,
        check=check,
    )


SYSTEM_KINDS = [_alias(p) for p in PIPELINES]
