"""EllieSQL's text-to-SQL pipelines as eval systems on Spider dev (execution accuracy), driven
by a scripted OpenAI-compatible server on loopback so every call is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.runner import RunOptions, run_system
from evals.systems import parse_system
from llm_eff.core.errors import UserError
from llm_eff.core.runlog import RunLog
from tests.conftest import DATA
from tests.proxy_support import scripted_llm, serve_in_thread

SPIDER = DATA / "spider"

SCRIPT = {  # the first dev question: SELECT count(*) FROM singer
    "b": ["singer", "SELECT count(*) FROM singr"],
    "i": [
        "singer",
        "1. how many singers",
        "SELECT count(*) FROM singr",
        "SELECT count(*) FROM singer",
    ],
    "a": [
        "singer",
        "1. how many singers",
        "Q: list singers\nSELECT name FROM singer",
        "SELECT count(*) FROM singer",
    ],
    # cascade: basic's query fails, so it escalates; intermediate's first query works
    "c": [
        "singer",
        "SELECT count(*) FROM singr",
        "1. how many singers",
        "SELECT count(*) FROM singer",
    ],
}


def test_pipelines_cost_more_and_correct_themselves(tmp_path: Path) -> None:
    from evals.benchmarks.registry import load_benchmark

    bench = load_benchmark(f"spider-dev:{SPIDER}")
    assert len(bench.tasks) == 1034
    app = scripted_llm(SCRIPT)
    log = RunLog(tmp_path / "run.jsonl")
    with serve_in_thread(app) as url:
        for model, pipeline in (
            ("b", "basic"),
            ("i", "intermediate"),
            ("a", "advanced"),
            ("c", "cascade"),
        ):
            spec = f"openai/{model}:pipeline={pipeline},api_base={url}/v1"
            run_system(bench, parse_system(spec), log, RunOptions(limit=1))
    by = {a.system.split()[-1]: a for a in log.read()}
    assert not by["basic"].passed and by["basic"].details["reason"] == "sql_error"
    assert by["intermediate"].passed and by["advanced"].passed
    tokens = [by[p].usage.total_tokens for p in ("basic", "intermediate", "advanced")]
    assert tokens[0] < tokens[1] < tokens[2]
    assert len(app.state.prompts["b"]) == 2 and len(app.state.prompts["i"]) == 4
    linked = app.state.prompts["b"][1]
    assert "singer(" in linked and "concert(" not in linked  # schema linking kept one table
    assert "no such table: singr" in app.state.prompts["i"][3]  # the error drove the fix
    assert by["cascade"].passed and len(app.state.prompts["c"]) == 4  # stopped at intermediate
    assert tokens[0] < by["cascade"].usage.total_tokens < tokens[2]


def test_unknown_or_misplaced_pipelines_are_refused(tmp_path: Path) -> None:
    from evals.benchmarks.efficiency import load_efficiency
    from evals.benchmarks.registry import load_benchmark

    log = RunLog(tmp_path / "run.jsonl")
    with pytest.raises(UserError, match="has no pipelines"):
        run_system(
            load_efficiency("test"),
            parse_system("tiny-llama:pipeline=basic"),
            log,
            RunOptions(limit=1),
        )
    bench = load_benchmark(f"spider-dev:{SPIDER}")
    with pytest.raises(UserError, match="unknown SQL pipeline 'fancy'"):
        run_system(
            bench, parse_system("tiny-llama:pipeline=fancy,max_tokens=4"), log, RunOptions(limit=1)
        )
    with pytest.raises(UserError, match="spider-dev needs your Spider folder"):
        load_benchmark("spider-dev")
