"""Run a Python program's pytest tests in the sandbox (NaturalCodeBench / HumanEval style).

The program is written to `solution.py`; the tests to `test_solution.py`, which starts with
`from solution import *` as NCB's scorer does. Test functions and classes that the program
defines itself are dropped from the test module before the real tests are defined, so only the
benchmark's tests are collected (NCB's scorer would also collect the model's own `test_*`
functions, and fail a correct program whose stray test needs a fixture). pytest writes a JUnit
XML report that gives the per-test results. Standard input holds 1,000 lines of "1", as in
NCB, so programs that read input do not block.
"""

from __future__ import annotations

import sys

from llm_eff.sandbox.limits import Limits
from llm_eff.sandbox.outcome import (
    TestOutcome,
    apply_test_results,
    classify,
    parse_junit,
    reason_from_signal,
)
from llm_eff.sandbox.runner import run_sandboxed

NCB_STDIN = b"1\n" * 1000
TEST_HEADER = (
    "import pytest\n"
    "from solution import *\n"
    "import solution as _solution_module\n"
    "for _name in [n for n in vars(_solution_module) if n.lower().startswith('test')]:\n"
    "    globals().pop(_name, None)\n"
)


def run_python_tests(
    code: str,
    tests: str,
    setup_code: str = "",
    limits: Limits | None = None,
    extra_files: dict[str, str | bytes] | None = None,
) -> TestOutcome:
    """Run `tests` (pytest source) against `code` in the sandbox and report per-test results."""
    if not code.strip():
        return TestOutcome(False, "no_code", message="no code found in the output")
    try:
        compile(code, "solution.py", "exec")
    except SyntaxError as exc:
        return TestOutcome(False, "syntax_error", message=f"{exc.msg} (line {exc.lineno})")
    except ValueError as exc:  # e.g. null bytes in the source
        return TestOutcome(False, "syntax_error", message=str(exc))
    files: dict[str, str | bytes] = {
        "solution.py": code,
        "test_solution.py": TEST_HEADER + tests + "\n" + setup_code + "\n",
        **(extra_files or {}),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--junitxml=report.xml",
        "-o",
        "junit_family=xunit1",
        "--rootdir=.",
        "test_solution.py",
    ]
    result = run_sandboxed(command, files, limits, stdin=NCB_STDIN, collect=("report.xml",))
    outcome = TestOutcome(False, "crash", wall_s=result.wall_s, isolation=result.isolation)
    tail = (result.stdout + result.stderr)[-4000:]
    if result.timed_out:
        forks_refused = "BlockingIOError" in tail or "temporarily unavailable" in tail
        outcome.reason = "process_limit" if forks_refused else "timeout"
        outcome.message = f"wall-clock limit reached\n{tail}"
        return outcome
    report = result.files.get("report.xml")
    per_test: dict[str, tuple[str, str]] = {}
    if report:
        try:
            per_test = parse_junit(report)
        except Exception:  # noqa: BLE001 - a corrupt report means the run crashed
            per_test = {}
    outcome.message = tail
    apply_test_results(outcome, per_test, tail)
    by_signal = reason_from_signal(result.signal)
    if by_signal == "timeout" and ("BlockingIOError" in tail or "temporarily unavailable" in tail):
        by_signal = "process_limit"
    if by_signal and not outcome.passed:
        outcome.reason = by_signal
    elif not per_test:
        # no usable report (none, or one garbled by forked copies of the test process):
        # read the reason from the output
        outcome.reason = classify([tail]) if "rror" in tail else ("no_tests" if report else "crash")
    return outcome
