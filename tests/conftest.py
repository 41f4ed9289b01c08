"""Shared fixtures: paths to the vendored test data, tiny models, HumanEval-format files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"  # small public subsets, licences in tests/data/README.md
SHARED_DATA = ROOT.parent / "shared" / "data"  # whole data sets beside a checkout (opt-in tests)
JAVA_LIBS = DATA / "ncb" / "java-libs"
NO_JDK = "needs a JDK for the Java tests: no javac on PATH (Debian: openjdk-17-jdk-headless)"

HUMANEVAL_TASKS = [
    {
        "task_id": "Toy/0",
        "prompt": 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
        "entry_point": "add",
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"
        "    assert candidate(-1, 1) == 0\n",
    },
    {
        "task_id": "Toy/1",
        "prompt": "def is_palindrome(s: str) -> bool:\n"
        '    """True if s reads the same backwards."""\n',
        "entry_point": "is_palindrome",
        "canonical_solution": "    return s == s[::-1]\n",
        "test": "def check(candidate):\n    assert candidate('abba')\n"
        "    assert not candidate('abc')\n",
    },
    {
        "task_id": "Toy/2",
        "prompt": "from typing import List\n\n\ndef running_max(xs: List[int]) -> List[int]:\n"
        '    """Running maximum of xs."""\n',
        "entry_point": "running_max",
        "canonical_solution": "    out, best = [], None\n    for x in xs:\n"
        "        best = x if best is None else max(best, x)\n        out.append(best)\n"
        "    return out\n",
        "test": "def check(candidate):\n    assert candidate([1, 3, 2, 5]) == [1, 3, 3, 5]\n"
        "    assert candidate([]) == []\n",
    },
]


@pytest.fixture()
def humaneval_file(tmp_path: Path) -> Path:
    """A small HumanEval-format .jsonl file with canonical solutions."""
    path = tmp_path / "toy_humaneval.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in HUMANEVAL_TASKS))
    return path


@pytest.fixture(scope="session")
def tiny_model():
    """A 2-layer random Llama and its tokenizer, built in code."""
    from llm_eff.models.tiny import tiny_llama

    return tiny_llama()


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: int = 600,
    unset: tuple[str, ...] = (),
):
    """Run the real `llm-eff` console script in a subprocess (`unset`: variables to remove)."""
    import subprocess

    exe = Path(sys.executable).with_name("llm-eff")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "llm_eff.cli"]
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    for name in unset:
        full_env.pop(name, None)
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


def procs_with(marker: str) -> list[int]:
    """Host processes (other than this one) whose command line contains `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            found.append(int(pid))
    return found
