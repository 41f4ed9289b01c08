"""Time a program's workload inside the sandbox: CPU time, warm-up, doubling rounds, median.

The workload is the task's `metadata["workload"]` source (a `workload()` function calling the
solution on a sizeable input) or, failing that, the task's tests: every argument-free `test_*`
function and every `unittest.TestCase` class. It runs `warmup` times untimed, then in
`repeats` timed rounds of `n` calls each, `n` doubled until one round takes at least
`min_round_s`; the runtime is the median round divided by `n`. CPU time
(`time.process_time`) makes sleeping free and the machine's other load matter little.
"""

from __future__ import annotations

import json
import sys

from llm_eff.core.types import Task
from llm_eff.sandbox.limits import Limits
from llm_eff.sandbox.runner import run_sandboxed

TIMER = r"""
import json, statistics, sys, time
warmup, repeats, min_round = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
from workload import workload
for _ in range(warmup):
    workload()
n = 1
while True:
    t = time.process_time()
    for _ in range(n):
        workload()
    spent = time.process_time() - t
    if spent >= min_round or n >= 1 << 16:
        break
    n *= 2
rounds = [spent]
for _ in range(repeats - 1):
    t = time.process_time()
    for _ in range(n):
        workload()
    rounds.append(time.process_time() - t)
print("RUNTIME " + json.dumps({"per_call_s": statistics.median(rounds) / n, "calls": n}))
"""
TEST_WORKLOAD = """

def workload():
    import io as _io
    import unittest as _unittest
    for _name, _fn in list(globals().items()):
        if isinstance(_fn, type) and issubclass(_fn, _unittest.TestCase):
            _suite = _unittest.defaultTestLoader.loadTestsFromTestCase(_fn)
            _unittest.TextTestRunner(stream=_io.StringIO()).run(_suite)
        elif (_name.startswith("test") and callable(_fn) and not isinstance(_fn, type)
                and getattr(getattr(_fn, "__code__", None), "co_argcount", 1) == 0):
            _fn()
"""


def workload_source(task: Task) -> str:
    """The timed module: the task's workload, or its tests' argument-free test functions."""
    head = "from solution import *\n"
    if task.metadata.get("workload"):
        return head + task.metadata["workload"]
    return head + task.tests + "\n" + task.setup_code + TEST_WORKLOAD


def measure_runtime(
    code: str, task: Task, repeats: int = 5, warmup: int = 1, min_round_s: float = 0.02,
    timeout_s: float = 10.0,
) -> float | None:  # fmt: skip
    """CPU seconds per workload call of `code` in the sandbox; None if it fails or times out."""
    limits = Limits.within(timeout_s)
    files = {"solution.py": code, "workload.py": workload_source(task), "timer.py": TIMER}
    argv = [str(warmup), str(repeats), str(min_round_s)]
    result = run_sandboxed([sys.executable, "timer.py", *argv], files, limits)
    if result.timed_out or result.returncode != 0:
        return None
    for line in result.stdout.splitlines():
        if line.startswith("RUNTIME "):
            return float(json.loads(line[len("RUNTIME ") :])["per_call_s"])
    return None
