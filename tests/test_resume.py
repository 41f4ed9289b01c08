"""Killing an eval run with SIGKILL half-way and rerunning it loses and duplicates nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from evals.metrics import summarize
from llm_eff.core import RunLog

from .conftest import cli

ARGS = ["eval", "--bench", "ncb-python", "--system", "reference", "--limit", "24", "--workers", "1"]


def _summary(path: Path) -> list[dict]:
    rows = []
    for s in summarize(RunLog(path).read()):
        d = s.to_dict()
        for volatile in ("latency_p50_s", "latency_p95_s", "throughput_tokens_per_s"):
            d.pop(volatile)
        rows.append(d)
    return rows


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path):
    killed = tmp_path / "killed.jsonl"
    exe = Path(sys.executable).with_name("llm-eff")
    proc = subprocess.Popen(
        [str(exe), *ARGS, "--run", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if killed.exists() and killed.read_text().count("\n") >= 6:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = killed.read_text().count("\n")
    assert 6 <= partial < 24, "the run should have been killed half-way"

    resumed = cli(*ARGS, "--run", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    keys = Counter(
        (r["task_id"], r["system_hash"], r["sample"])
        for r in map(json.loads, killed.read_text().splitlines())
    )
    assert len(keys) == 24 and set(keys.values()) == {1}

    clean = tmp_path / "clean.jsonl"
    assert cli(*ARGS, "--run", str(clean)).returncode == 0
    assert _summary(killed) == _summary(clean)

    again = cli(*ARGS, "--run", str(killed))  # a third run has nothing left to do
    assert again.returncode == 0 and killed.read_text().count("\n") == 24
