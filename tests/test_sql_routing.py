"""Routed text-to-SQL: labels from the pipelines' attempts, database folds, calibrated cuts,
cross-validated routing, the routed system in `llm-eff eval`, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.systems import parse_system
from llm_eff.core.errors import UserError
from llm_eff.core.types import Attempt, Cost, Task, Usage
from routers.sql.routed import (
    TARGETS,
    calibrate_cuts,
    database_folds,
    labels_from,
    pick,
    route_offline,
)
from tests.conftest import DATA

SPIDER = DATA / "spider"


def _tasks() -> list[Task]:
    """24 questions over 4 databases: counting questions (basic suffices) and join questions
    (only the advanced pipeline answers them)."""
    tasks = []
    for db in ("shop", "zoo", "school", "airline"):
        for i in range(3):
            tasks.append(
                Task(
                    f"{db}/count{i}",
                    f"How many {db} records of kind {i} are there?",
                    metadata={"category": db, "question": f"How many {db} items {i}?"},
                )
            )
            tasks.append(
                Task(
                    f"{db}/join{i}",
                    f"For each {db} owner list names joined with {i}",
                    metadata={
                        "category": db,
                        "question": f"List every {db} owner's name joined with "
                        f"their orders, grouped and sorted {i}",
                    },
                )
            )
    return tasks


def _recorded(tasks: list[Task]) -> dict[str, dict[str, Attempt]]:
    tokens = {"basic": 100, "intermediate": 300, "advanced": 900}
    out: dict[str, dict[str, Attempt]] = {p: {} for p in TARGETS}
    for t in tasks:
        for p in TARGETS:
            passed = p == "advanced" or "count" in t.id
            out[p][t.id] = Attempt(
                t.id,
                f"m {p}",
                p,
                passed=passed,
                usage=Usage(prompt_tokens=tokens[p], completion_tokens=10),
                cost=Cost(tokens[p] * 1e-6, "test"),
            )
    return out


def test_labels_folds_and_cuts() -> None:
    tasks = _tasks()
    recorded = _recorded(tasks)
    labels = labels_from(recorded, [t.id for t in tasks])
    assert labels["shop/count0"] == 0.0 and labels["shop/join0"] == 1.0
    recorded["advanced"]["zoo/join1"].passed = False  # nobody passes: no label
    assert "zoo/join1" not in labels_from(recorded, [t.id for t in tasks])
    folds = database_folds(tasks, 3)
    assert len(folds) == 3 and sum(map(len, folds)) == 24
    assert all(len({t.metadata["category"] for t in f}) >= 1 for f in folds)
    dbs = [{t.metadata["category"] for t in f} for f in folds]
    assert all(a.isdisjoint(b) for i, a in enumerate(dbs) for b in dbs[i + 1 :])
    cuts = calibrate_cuts([0.1, 0.2, 0.3, 0.8, 0.9, 0.95], [0, 0, 0, 0.5, 1, 1])
    assert [pick(s, cuts) for s in (0.15, 0.8, 0.95)] == ["basic", "intermediate", "advanced"]


def test_knn_routes_held_out_databases_like_the_oracle_and_cheaper_than_advanced() -> None:
    tasks = _tasks()
    recorded = _recorded(tasks)
    results = {}
    for kind in ("knn", "logistic", "oracle", "random", "rules"):
        decisions = route_offline(kind, tasks, recorded, folds=4)
        assert [d.task.id for d in decisions] == [t.id for t in tasks]
        chosen = [recorded[d.target][d.task.id] for d in decisions]
        results[kind] = (
            sum(a.passed for a in chosen) / len(chosen),
            sum(a.usage.total_tokens for a in chosen) / len(chosen),
        )
    always_advanced = (1.0, 910.0)
    assert results["oracle"] == (1.0, (12 * 110 + 12 * 910) / 24)
    assert results["knn"][0] >= 0.9 and results["knn"][1] < 0.7 * always_advanced[1]
    assert results["logistic"][0] >= 0.8
    assert results["random"][0] < results["knn"][0]  # same token share, wrong questions


def test_route_offline_errors_are_clear() -> None:
    tasks = _tasks()
    recorded = _recorded(tasks)
    del recorded["basic"]["shop/count0"]
    with pytest.raises(UserError, match="no recorded pipeline attempts"):
        route_offline("knn", tasks, recorded)
    recorded = _recorded(tasks)
    for by_task in recorded.values():
        for a in by_task.values():
            a.passed = False
    with pytest.raises(UserError, match="nothing to learn a route from"):
        route_offline("knn", tasks, recorded)
    with pytest.raises(UserError, match="unknown router 'magic'"):
        parse_system("routed:magic")
    with pytest.raises(UserError, match="folds must be an integer"):
        parse_system("routed:knn:folds=1")
    from evals.benchmarks.efficiency import load_efficiency
    from evals.runner import RunOptions, run_systems
    from llm_eff.core.runlog import RunLog

    with pytest.raises(UserError, match="routes between pipelines"):
        run_systems(
            load_efficiency("test"),
            [parse_system("routed:knn")],
            RunLog("/dev/null"),
            RunOptions(limit=1),
        )
    assert parse_system("cascade:a>b").models() == ["a", "b"]
    assert parse_system("routed:knn:base=tiny-llama").models() == ["tiny-llama"]


def test_system_specs_for_pipelines_and_routed_systems() -> None:
    basic = parse_system("sql-basic:max_tokens=64")
    assert (basic.name, basic.model, basic.pipeline) == ("sql-basic", "smollm2-135m", "basic")
    routed = parse_system("routed:knn:base=tiny-llama,max_tokens=64,folds=3")
    assert routed.name == "routed:knn" and routed.extra == {"base": "tiny-llama", "folds": 3}
    targets = routed.steps()[:-1]
    assert [t.pipeline for t in targets] == list(TARGETS)
    assert parse_system("sql-basic:base=tiny-llama,max_tokens=64").hash == targets[0].hash
    assert parse_system("routed:knn:folds=3").hash != parse_system("routed:knn").hash


def test_a_routed_system_runs_in_eval_from_its_pipelines(tmp_path: Path) -> None:
    from evals.benchmarks.registry import load_benchmark
    from evals.runner import RunOptions, run_systems
    from llm_eff.core.runlog import RunLog
    from tests.proxy_support import scripted_llm, serve_in_thread

    bench = load_benchmark(f"spider-dev:{SPIDER}")
    ids = ("spider-dev/0", "spider-dev/1", "spider-dev/45", "spider-dev/46")  # two databases
    app = scripted_llm({"m": ["SELECT count(*) FROM singer"]})  # right for the first database
    log = RunLog(tmp_path / "run.jsonl")
    with serve_in_thread(app) as url:
        base = f"base=openai/m,api_base={url}/v1"
        systems = [parse_system(f"routed:oracle:{base},folds=2")]
        run_systems(bench, systems, log, RunOptions(task_ids=ids))
        by_system: dict[str, list[Attempt]] = {}
        for a in log.read():
            by_system.setdefault(a.system, []).append(a)
        assert set(by_system) == {
            "openai/m basic",
            "openai/m intermediate",
            "openai/m advanced",
            "routed:oracle",
        }
        routed = {a.task_id: a for a in by_system["routed:oracle"]}
        basic = {a.task_id: a for a in by_system["openai/m basic"]}
        assert (
            routed["spider-dev/0"].passed and routed["spider-dev/0"].details["routed_to"] == "basic"
        )
        assert routed["spider-dev/0"].usage.total_tokens == basic["spider-dev/0"].usage.total_tokens
        assert not routed["spider-dev/45"].passed
        calls = sum(len(v) for v in app.state.prompts.values())
        run_systems(bench, systems, log, RunOptions(task_ids=ids))  # resumes: nothing new
        assert sum(len(v) for v in app.state.prompts.values()) == calls and len(log.read()) == 16
        with pytest.raises(UserError, match="no labelled training questions"):
            run_systems(
                bench, [parse_system(f"routed:knn:{base},folds=2")], log, RunOptions(task_ids=ids)
            )


def test_chat_cascade_escalates_only_when_the_weak_samples_disagree(tmp_path: Path) -> None:
    from evals.benchmarks.efficiency import load_efficiency
    from evals.runner import RunOptions, run_system
    from llm_eff.core.runlog import RunLog
    from routers.cascade import answer_key
    from tests.proxy_support import scripted_llm, serve_in_thread

    assert answer_key("so:\n```python\nx =  1\n```") == answer_key("```py\nX = 1\n```")
    answer = "```python\ndef f():\n    return 1\n```"
    app = scripted_llm(
        {
            "sure": [answer],
            "unsure": [answer, "no idea", "maybe 2", "x"],
            "big": ["```python\ndef g():\n    return 2\n```"],
        }
    )
    log = RunLog(tmp_path / "run.jsonl")
    bench = load_efficiency("test")
    with serve_in_thread(app) as url:
        for weak in ("sure", "unsure"):
            spec = parse_system(f"cascade:openai/{weak}>openai/big:k=3,api_base={url}/v1")
            run_system(bench, spec, log, RunOptions(limit=1))
    kept = {a.system: a for a in log.read()}
    sure, unsure = kept["cascade:openai/sure>openai/big"], kept["cascade:openai/unsure>openai/big"]
    assert "def f" in sure.output and "def g" in unsure.output
    assert len(app.state.prompts["big"]) == 1  # one escalation, for the unsure weak model
    assert unsure.usage.total_tokens == sure.usage.total_tokens + 15  # the strong call's tokens
    assert unsure.usage.model == "openai/big" and sure.usage.model == "openai/sure"
    with pytest.raises(UserError, match="write cascade:WEAK>STRONG"):
        parse_system("cascade:only-one")
