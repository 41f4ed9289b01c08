"""Agents: GAIA scoring and loading, the shipped task set, the graph's module switches, and
real runs against a scripted OpenAI-compatible server on loopback and the embedded model."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agents.config import AgentConfig, load_grid
from agents.system import agent_system
from evals.benchmarks.gaia import MINI_TASKS, load_gaia, load_tasks, score_answer
from evals.runner import RunOptions, run_systems
from llm_eff.core.errors import UserError
from llm_eff.core.runlog import RunLog
from llm_eff.core.types import Attempt
from tests.conftest import cli
from tests.proxy_support import scripted_llm, serve_in_thread


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("1,932", "1932", True),
        ("$1932", "1932", True),
        ("1932 muffins", "1932", False),  # units make a number wrong, as in GAIA's scorer
        ("17%", "17", True),
        ("1677.250", "1677.25", True),
        ("Porto.", "Porto", True),
        ("  porto ", "Porto", True),
        ("Room 214", "room214", True),
        ("Lisbon", "Porto", False),
        ("a, b, 3", "A,B,3.0", True),
        ("a; b", "a, b", True),
        ("a, b", "a, b, c", False),
        ("b, a", "a, b", False),
        ("1000", "1,000", False),  # "1,000" is a list of two numbers in GAIA's rules
    ],
)
def test_gaia_scoring_rules(answer: str, reference: str, expected: bool) -> None:
    assert score_answer(answer, reference) is expected


def test_mini_task_answers_follow_from_their_attachments() -> None:
    tasks = {t.task_id: t for t in load_tasks(MINI_TASKS)}
    assert len(tasks) == 9 and {t.level for t in tasks.values()} == {1, 2, 3}
    rows = list(csv.DictReader((MINI_TASKS / "sales.csv").open()))
    total = sum(float(r["amount"]) for r in rows)
    assert float(tasks["mini-l1-csv"].answer) == pytest.approx(total)
    regions: dict[str, list[float]] = {}
    for r in rows:
        regions.setdefault(r["region"], []).append(float(r["amount"]))
    assert tasks["mini-l2-csv"].answer == max(regions, key=lambda k: sum(regions[k]))
    busiest = max(regions, key=lambda k: len(regions[k]))
    mean = sum(regions[busiest]) / len(regions[busiest])
    assert tasks["mini-l3-csv"].answer == f"{mean:.2f}"
    db = sqlite3.connect(MINI_TASKS / "shop.sqlite")
    (germans,) = db.execute("SELECT COUNT(*) FROM customers WHERE country='Germany'").fetchone()
    assert tasks["mini-l2-sql"].answer == str(germans)
    (france,) = db.execute(
        "SELECT SUM(quantity * unit_price) FROM orders JOIN customers ON customers.id = "
        "orders.customer_id WHERE country = 'France'"
    ).fetchone()
    assert tasks["mini-l3-sql"].answer == f"{france:.2f}"
    assert tasks["mini-l1-calc"].answer == str(23 * 12 * 7)
    directory = (MINI_TASKS / "directory.md").read_text()
    assert "| Project Falcon | Maria Chen |" in directory
    assert "| Maria Chen | Room 214 | 4410 | Amir Haddad |" in directory
    assert "| Amir Haddad | Room 301 | 4007 |" in directory


def test_bad_task_dirs_and_configs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no metadata.jsonl"):
        load_tasks(tmp_path)
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps(
            {
                "task_id": "t",
                "Question": "q",
                "Level": 1,
                "Final answer": "a",
                "file_name": "gone.csv",
            }
        )
        + "\n"
    )
    with pytest.raises(UserError, match="gone.csv not found"):
        load_tasks(tmp_path)
    with pytest.raises(UserError, match="unknown setting"):
        AgentConfig.from_dict({"planing": "once"})
    with pytest.raises(UserError, match="planning must be"):
        AgentConfig(planning="sometimes")
    with pytest.raises(UserError, match="scaling must be"):
        AgentConfig(scaling="vote:1")


def _nodes(config: AgentConfig) -> set[str]:
    from agents.graph import Models, build_graph
    from agents.tools import make_tools

    graph = build_graph(config, make_tools(list(config.tools)), Models({}, config))
    return {n for n in graph.get_graph().nodes if not n.startswith("__")}


def test_each_switch_changes_the_graph() -> None:
    assert _nodes(AgentConfig()) == {"act", "tool", "stop"}
    assert _nodes(AgentConfig(planning="once")) == {"plan", "act", "tool", "stop"}
    assert _nodes(AgentConfig(memory="summary")) == {"act", "tool", "summarize", "stop"}
    every = AgentConfig(planning="every:2", memory="summary")
    assert _nodes(every) == {"plan", "act", "tool", "summarize", "stop"}
    from agents.graph import Models, build_graph
    from agents.tools import make_tools

    edges = build_graph(every, make_tools(["calculator"]), Models({}, every)).get_graph().edges
    assert any(e.source == "summarize" and e.target == "plan" for e in edges)
    once = AgentConfig(planning="once")
    edges = build_graph(once, make_tools(["calculator"]), Models({}, once)).get_graph().edges
    assert not any(e.target == "plan" and e.source != "__start__" for e in edges)


@pytest.fixture(scope="module")
def llm_server():
    script = {
        "calc": ["Action: calculator\nInput: 23 * 12 * 7", "Final Answer: 1932"],
        "lost": ["Action: sql\nInput: SELECT 1", "I am not sure.", "Action: teleport\nInput: x"],
        "plain": ["Final Answer: 1932"],
        "py": [
            "Action: python\nInput: import csv\n"
            "rows = csv.DictReader(open('sales.csv'))\n"
            "print(sum(float(r['amount']) for r in rows))",
            "Final Answer: 1677.25",
        ],
    }
    app = scripted_llm(script)
    with serve_in_thread(app) as url:
        yield url + "/v1", app


def _config(url: str, model: str, **kw) -> AgentConfig:
    return AgentConfig(model=f"openai/{model}", api_base=url, **kw)


def _attempt(config: AgentConfig, tmp_path: Path, task_id: str = "calc", seed: int = 0) -> Attempt:
    """One agent attempt through the evals runner, as `llm-eff eval` runs it."""
    if task_id == "calc":
        tasks = tmp_path / "tasks"
        tasks.mkdir(exist_ok=True)
        question = "How many muffins: 23 boxes of 12 a day for 7 days?"
        row = {"task_id": "calc", "Question": question, "Level": 1, "Final answer": "1932"}
        (tasks / "metadata.jsonl").write_text(json.dumps(row) + "\n")
        bench = load_gaia(tasks)
    else:
        bench = load_gaia()
    log = RunLog(tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}.jsonl")
    options = RunOptions(task_ids=(task_id,), batch_size=1, workers=1, seed=seed)
    run_systems(bench, [agent_system(config)], log, options)
    (attempt,) = log.read()
    return attempt


def test_agent_uses_a_tool_then_answers(llm_server, tmp_path: Path) -> None:
    url, app = llm_server
    config = _config(url, "calc", tools=["calculator"], planning="none")
    attempt = _attempt(config, tmp_path)
    assert attempt.passed and attempt.output == "1932"
    assert attempt.details["tool_calls"] == 1 and attempt.details["llm_calls"] == 2
    assert attempt.details["trace"][0]["observation"] == "1932"
    assert attempt.usage.prompt_tokens == 20 and attempt.usage.completion_tokens == 10
    assert "Observation: 1932" in app.state.prompts["calc"][-1]  # simple memory shows it


def test_tool_errors_and_step_limit_end_in_a_recorded_failure(llm_server, tmp_path: Path) -> None:
    url, _ = llm_server
    config = _config(url, "lost", tools=["calculator", "sql"], max_steps=3)
    attempt = _attempt(config, tmp_path)
    assert not attempt.passed and attempt.error == "step_limit"
    observations = [s["observation"] for s in attempt.details["trace"]]
    assert observations[0].startswith("error: this task has no attached SQLite database")
    assert observations[1].startswith("error: reply with Action/Input")
    assert observations[2].startswith("error: unknown tool 'teleport'")
    assert attempt.details["steps"] == 3


def test_vote_scaling_runs_n_times_and_counts_every_call(llm_server, tmp_path: Path) -> None:
    url, _ = llm_server
    config = _config(url, "plain", scaling="vote:3", planning="once")
    attempt = _attempt(config, tmp_path)
    assert attempt.passed and attempt.details["runs"] == 3
    assert attempt.details["llm_calls"] == 6  # a plan and an answer per run
    assert attempt.usage.prompt_tokens == 60


def test_unknown_tool_or_model_in_a_config_is_one_line(tmp_path: Path) -> None:
    bad_tool = tmp_path / "tool.yaml"
    bad_tool.write_text(yaml.safe_dump({"tools": ["python", "browser"]}))
    result = cli("agent", "run", "--config", str(bad_tool), "--run", str(tmp_path / "r.jsonl"))
    assert result.returncode == 2 and "unknown tool 'browser'" in result.stderr
    bad_model = tmp_path / "model.yaml"
    bad_model.write_text(yaml.safe_dump({"model": "gpt-9-imaginary"}))
    result = cli("agent", "run", "--config", str(bad_model), "--run", str(tmp_path / "r.jsonl"))
    assert result.returncode == 2 and "unknown model 'gpt-9-imaginary'" in result.stderr
    result = cli("agent", "run", "--config", str(bad_model), "--tasks", str(tmp_path))
    assert result.returncode == 2 and "no metadata.jsonl" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.jsonl").exists()


def test_killed_sweep_resumes_with_one_attempt_each(llm_server, tmp_path: Path) -> None:
    url, _ = llm_server
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "base": {"model": "openai/calc", "api_base": url, "tools": ["calculator"]},
                "grid": {"planning": ["none", "once"], "max_steps": [2, 4]},
            }
        )
    )
    run = tmp_path / "sweep.jsonl"
    configs = load_grid(grid)
    assert len(configs) == 4 and len({c.hash for c in configs}) == 4
    exe = Path(sys.executable).with_name("llm-eff")
    args = [str(exe), "agent", "sweep", "--grid", str(grid), "--run", str(run)]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if run.exists() and len(run.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(RunLog(run).read())
    assert 5 <= partial < 36
    result = cli(
        "agent",
        "sweep",
        "--grid",
        str(grid),
        "--run",
        str(run),
        "--report",
        str(tmp_path / "report"),
    )
    assert result.returncode == 0, result.stderr
    attempts = RunLog(run).read()
    keys = [(a.task_id, a.system_hash) for a in attempts]
    assert len(keys) == len(set(keys)) == 36  # 9 tasks x 4 configurations, none twice
    assert "recommended:" in result.stdout
    assert (tmp_path / "report" / "report.html").is_file()


def test_embedded_model_runs_the_graph_end_to_end(tmp_path: Path) -> None:
    config = AgentConfig(model="smollm2-135m", tools=["calculator"], max_steps=2, max_tokens=48)
    first = _attempt(config, tmp_path, seed=0)
    again = _attempt(config, tmp_path, seed=0)
    assert first.usage.completion_tokens > 0 and first.cost.dollars > 0
    assert first.details["llm_calls"] >= 1 and first.details["steps"] >= 1
    assert (first.output, first.details["trace"]) == (again.output, again.details["trace"])


def test_python_tool_runs_in_the_sandbox_with_the_attachment(llm_server, tmp_path: Path) -> None:
    url, _ = llm_server
    config = _config(url, "py", tools=["python"])
    attempt = _attempt(config, tmp_path, "mini-l1-csv")
    assert attempt.details["trace"][0]["observation"] == "1677.25"
    assert attempt.passed


def test_parallel_tasks_batch_their_calls_and_answer_as_one_at_a_time(tmp_path: Path) -> None:
    from agents.system import run_agents

    runs = {}
    for parallel in (1, 9):
        app = scripted_llm({"plain": ["Final Answer: 1932"]}, delay_s=0.2)
        with serve_in_thread(app) as url:
            config = _config(url + "/v1", "plain", planning="once")
            log = RunLog(tmp_path / f"p{parallel}.jsonl")
            written = run_agents(load_gaia(), [agent_system(config)], log, parallel=parallel)
        attempts = sorted(log.read(), key=lambda a: a.task_id)
        assert written == len(attempts) == 9 and len(app.state.prompts["plain"]) == 18
        runs[parallel] = (app.state.peak, attempts)
    (alone, one_by_one), (peak, together) = runs[1], runs[9]
    assert alone == 1 and peak >= 5  # the nine tasks' calls were in flight together
    for a, b in zip(one_by_one, together, strict=True):
        assert (a.task_id, a.output, a.passed) == (b.task_id, b.output, b.passed)
        assert a.details["llm_calls"] == b.details["llm_calls"] == 2  # a plan, an answer
        assert a.usage.prompt_tokens == b.usage.prompt_tokens
