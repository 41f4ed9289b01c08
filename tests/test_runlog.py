"""The run log: durable appends, crash-torn lines, resume keys."""

from pathlib import Path

import pytest

from llm_eff.core import Attempt, Cost, RunLog, Usage, UserError


def _attempt(task: str, sample: int = 0) -> Attempt:
    return Attempt(
        task_id=task,
        system="s",
        system_hash="h",
        sample=sample,
        passed=True,
        usage=Usage(prompt_tokens=3, completion_tokens=4, latency_s=0.5),
        cost=Cost(0.01, "test"),
        benchmark="b",
    )


def test_round_trip(tmp_path: Path):
    log = RunLog(tmp_path / "run.jsonl")
    log.append(_attempt("1"))
    log.append(_attempt("2", sample=1))
    back = log.read()
    assert [a.task_id for a in back] == ["1", "2"]
    assert back[0].usage.total_tokens == 7 and back[0].cost.dollars == 0.01
    assert log.done_keys() == {("b", "1", "h", 0), ("b", "2", "h", 1)}


def test_torn_last_line_is_dropped_and_next_append_is_clean(tmp_path: Path):
    path = tmp_path / "run.jsonl"
    log = RunLog(path)
    log.append(_attempt("1"))
    with open(path, "a") as fh:
        fh.write('{"type": "attempt", "task_id": "2", "sys')  # a crash mid-write
    assert [a.task_id for a in log.read()] == ["1"]
    log.append(_attempt("3"))
    assert [a.task_id for a in log.read()] == ["1", "3"]
    assert path.read_text().count("\n") == 2


def test_corrupt_middle_line_is_a_user_error(tmp_path: Path):
    path = tmp_path / "run.jsonl"
    path.write_text('{"task_id": "1", "system": "s", "system_hash": "h"}\nnot json\n{}\n')
    with pytest.raises(UserError, match=":2: malformed"):
        RunLog(path).read()
