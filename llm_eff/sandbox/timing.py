"""Time a program's workload from outside the sandbox: kernel CPU time, warm-up, least of runs.

The workload is the task's `metadata["workload"]` source (a `workload()` function calling the
solution on a sizeable input) or, failing that, the task's tests: every argument-free `test_*`
function and every `unittest.TestCase` class. Each measurement is a whole sandboxed run of
`timer.py`, and its CPU time (user + system, the program and all its children) is read by
the supervisor from the run's cgroup or the reaped process's rusage, never from a clock inside
the program. A run with no timed calls gives the fixed cost (interpreter start, imports,
warm-up); the runtime is (least timed run - least base run) / n, with `n` chosen by the
supervisor from a growing probe so that the timed calls take at least `min_round_s` (and at
least 0.3 s, against the fixed cost's noise). CPU time
makes sleeping free and the machine's other load matter little.
"""

from __future__ import annotations

import math
import sys

from llm_eff.core.types import Task
from llm_eff.sandbox.limits import Limits
from llm_eff.sandbox.runner import helper_path, run_sandboxed

MAX_CALLS = 1 << 16
PROBE_S = 0.1
TARGET_S = 0.3
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


def _cpu_of_run(files: dict, calls: int, warmup: int, limits: Limits) -> float | None:
    command = [sys.executable, "-I", helper_path("timer.py"), str(calls), str(warmup)]
    result = run_sandboxed(command, files, limits)
    if result.timed_out or result.returncode != 0 or result.cpu_s is None:
        return None
    return result.cpu_s


def measure_runtime(
    code: str,
    task: Task,
    repeats: int = 3,
    warmup: int = 1,
    min_round_s: float = 0.02,
    timeout_s: float = 10.0,
) -> float | None:
    """CPU seconds per workload call of `code`, measured by the kernel; None if it fails."""
    limits = Limits.within(timeout_s)
    files = {"solution.py": code, "timed_workload.py": workload_source(task)}
    base = _cpu_of_run(files, 0, warmup, limits)
    if base is None:
        return None
    # a run's fixed cost varies by tens of milliseconds: grow the probe until the calls cost
    # clearly more than that, then time at least TARGET_S of calls
    probe_calls = 1
    while True:
        probe = _cpu_of_run(files, probe_calls, warmup, limits)
        if probe is None:
            return None
        if probe - base >= PROBE_S or probe_calls >= MAX_CALLS:
            break
        probe_calls *= 8
    per_call = max(probe - base, 1e-9) / probe_calls
    target = max(min_round_s, TARGET_S)
    calls = max(1, min(MAX_CALLS, math.ceil(target / per_call), int(timeout_s / 3 / per_call)))
    bases, timed = [base], []
    if calls <= probe_calls:  # the last probe already timed enough calls: it is a timed run
        calls = probe_calls
        timed.append(probe)
    while len(timed) < max(1, repeats):
        spent = _cpu_of_run(files, calls, warmup, limits)
        if spent is None:
            return None
        timed.append(spent)
    if repeats >= 3:  # a second fixed-cost sample steadies the base
        again = _cpu_of_run(files, 0, warmup, limits)
        if again is not None:
            bases.append(again)
    # the least of each: other load on the machine only ever adds CPU time (as in timeit)
    return max(min(timed) - min(bases), 0.0) / calls
