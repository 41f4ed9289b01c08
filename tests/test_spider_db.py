"""The Spider database builder: gold queries run and return rows, wrong variants differ, and
execution accuracy compares result sets (order only when the gold query orders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.benchmarks.spider.db import build_databases, check_databases, parse_schema
from evals.benchmarks.spider.execution import execution_match
from llm_eff.core.errors import UserError

from .conftest import DATA

SPIDER = DATA / "spider"


def test_built_dev_databases_serve_execution_accuracy(tmp_path: Path) -> None:
    paths = build_databases(SPIDER / "tables.json", SPIDER / "dev.json", tmp_path)
    assert len(paths) == 20
    report = check_databases(SPIDER / "tables.json", SPIDER / "dev.json", paths)
    assert report.queries == 1034 and report.ran == report.queries, report.failures[:3]
    assert report.nontrivial >= 0.9 * report.queries
    assert report.variants > 500 and report.told_apart >= 0.9 * report.variants
    again = build_databases(SPIDER / "tables.json", SPIDER / "dev.json", tmp_path)
    assert again == paths  # reused, not rebuilt


def test_execution_match_on_a_built_database(tmp_path: Path) -> None:
    paths = build_databases(SPIDER / "tables.json", SPIDER / "dev.json", tmp_path)
    db = paths["concert_singer"]
    gold = "SELECT name FROM singer WHERE age > 20"
    assert execution_match("select Name from singer where Age > 20", gold, db)
    assert not execution_match("SELECT name FROM singer", gold, db)
    assert not execution_match("SELECT nme FROM singer", gold, db)  # does not run
    ordered = "SELECT name FROM singer ORDER BY age DESC"
    assert execution_match("SELECT name FROM singer ORDER BY age DESC", ordered, db)
    assert not execution_match("SELECT name FROM singer ORDER BY age ASC", ordered, db)
    assert execution_match("SELECT name FROM singer ORDER BY age ASC", gold.split(" WHERE")[0], db)


def test_malformed_schema_and_missing_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="malformed schema for database broken"):
        parse_schema({"db_id": "broken", "table_names_original": ["t"]})
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps([{"db_id": "nowhere", "query": "SELECT 1"}]))
    tables = tmp_path / "t.json"
    tables.write_text("[]")
    with pytest.raises(UserError, match="database nowhere is not in"):
        build_databases(tables, questions, tmp_path / "dbs")
    with pytest.raises(UserError, match="Spider file not found"):
        build_databases(tmp_path / "missing.json", questions, tmp_path / "dbs")
