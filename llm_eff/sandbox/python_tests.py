"""Run a Python program's pytest tests in the sandbox (NaturalCodeBench / HumanEval style).

The program is written to `solution.py`; the tests never reach the disk. They go to the
trusted harness (`harness.py`) inside the jail, which builds the test module in memory (it
starts with `from solution import *`, as NCB's scorer does), drops the program's own
`test*` names first (NCB's scorer would collect them too), runs pytest and reports through a
channel the supervisor reads. Before the run the supervisor collects the test names itself
from the source (`expected_tests`); afterwards it requires exactly that set to have reported:
a missing, extra or duplicated result, a run with no tests, an early exit, a result message
that is missing or malformed or a test that "passed" without its body returning is a failed
attempt with its own reason. Standard input holds 1,000 lines of "1", as in NCB.
"""

from __future__ import annotations

import ast
import json
import secrets
import sys

from llm_eff.sandbox.limits import Limits
from llm_eff.sandbox.outcome import TestOutcome, classify, reason_from_signal
from llm_eff.sandbox.runner import ExecResult, helper_path, run_sandboxed

NCB_STDIN = b"1\n" * 1000
TEST_HEADER = (
    "import pytest\n"
    "from solution import *\n"
    "import solution as _solution_module\n"
    "for _name in [n for n in vars(_solution_module) if n.lower().startswith('test')]:\n"
    "    globals().pop(_name, None)\n"
)
PLACEHOLDER = "# the tests are held in memory by the llm-eff harness\n"


def expected_tests(source: str) -> set[str]:
    """The test keys ('test_f', 'TestX::test_m') pytest will collect from `source`."""
    tree = ast.parse(source)
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}

    def methods(cls: ast.ClassDef, seen: frozenset = frozenset()) -> set[str]:
        found = {
            n.name
            for n in cls.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
        }
        for base in cls.bases:
            if isinstance(base, ast.Name) and base.id in classes and base.id not in seen:
                found |= methods(classes[base.id], seen | {cls.name})
        return found

    def is_testcase(cls: ast.ClassDef) -> bool:
        return any(
            (isinstance(b, ast.Attribute) and b.attr == "TestCase")
            or (isinstance(b, ast.Name) and b.id == "TestCase")
            for b in cls.bases
        )

    keys: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name.startswith("test"):
                keys.add(node.name)
        elif isinstance(node, ast.ClassDef) and (node.name.startswith("Test") or is_testcase(node)):
            has_init = any(
                isinstance(n, ast.FunctionDef) and n.name == "__init__" for n in node.body
            )
            if not has_init or is_testcase(node):
                keys |= {f"{node.name}::{m}" for m in methods(node)}
    return keys


def parse_report(data: bytes, nonce: str) -> dict | None:
    """The harness's message as a dict, or None when it is missing, malformed or forged."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if not text.endswith("\n") or len(lines) < 4 or lines[0] != nonce or lines[-2] != nonce:
        return None
    report: dict = {"results": [], "returned": {}, "untyped": [], "errors": [], "tampered": []}
    try:
        for line in lines[1:-2]:
            kind, _, body = line.partition(" ")
            if kind in ("X", "I"):
                report["exit" if kind == "X" else "interrupted"] = int(body)
                continue
            value = ast.literal_eval(body)
            if not isinstance(value, str):
                return None
            if kind == "R":
                key, when, outcome, message = value.split("\t", 3)
                report["results"].append((key, when, outcome, message))
            elif kind == "B":
                key, count = value.rsplit("\t", 1)
                report["returned"][key] = int(count)
            elif kind in ("U", "E", "T"):
                report[{"U": "untyped", "E": "errors", "T": "tampered"}[kind]].append(value)
            else:
                return None
    except (ValueError, SyntaxError):
        return None
    return report if "exit" in report else None


def judge(report: dict, expected: set[str], outcome: TestOutcome) -> TestOutcome:
    """Fill `outcome` from the harness's report, cross-checked against the expected tests."""
    calls: dict[str, list[str]] = {}
    broken: set[str] = set()
    messages: list[str] = []
    for key, when, result, message in report["results"]:
        if when == "call":
            calls.setdefault(key, []).append(result)
        elif result == "failed":
            broken.add(key)  # a failing setup or teardown fails the test
        if message:
            messages.append(message)
    outcome.tests_total = len(expected)
    per_test = {}
    for key in sorted(expected):
        results = calls.get(key, [])
        ok = bool(results) and all(r == "passed" for r in results) and key not in broken
        per_test[key] = "passed" if ok else ("missing" if not results else "failed")
    outcome.per_test = per_test
    outcome.tests_passed = sum(s == "passed" for s in per_test.values())
    unreturned = [k for k, s in per_test.items() if s == "passed" and not report["returned"].get(k)]
    extra = sorted(set(calls) - expected)
    outcome.passed = False
    if report["tampered"] or unreturned or extra:
        outcome.reason = "tampering"
        outcome.message = (
            f"test framework changed: {report['tampered']}; passed without running: "
            f"{unreturned}; results for unknown tests: {extra}"
        )
        outcome.tests_passed = 0
    elif report["untyped"]:
        outcome.reason = "bad_answer_type"
        outcome.message = f"the candidate returned non-plain data: {report['untyped'][:5]}"
        outcome.tests_passed = 0
    elif report.get("interrupted") and outcome.tests_passed < outcome.tests_total:
        outcome.reason = "interrupted"
        outcome.message = "the run was interrupted (KeyboardInterrupt)\n" + "\n".join(messages)
    elif not calls and not report["errors"]:
        outcome.reason = "no_tests_ran"
    elif outcome.tests_passed == outcome.tests_total and outcome.tests_total:
        outcome.passed, outcome.reason = True, "passed"
    else:
        failures = messages + report["errors"]
        joined = "\n".join(failures)
        if "SystemExit" in joined or "KeyboardInterrupt" in joined:
            outcome.reason = "early_exit"
        elif failures:
            outcome.reason = classify(failures)
        else:
            outcome.reason = "missing_results"
        outcome.message = joined[-4000:]
    return outcome


def run_python_tests(
    code: str,
    tests: str,
    setup_code: str = "",
    limits: Limits | None = None,
    extra_files: dict[str, str | bytes] | None = None,
    entry_point: str | None = None,
) -> TestOutcome:
    """Run `tests` (pytest source) against `code` in the sandbox and report per-test results.

    With `entry_point` (function-style benchmarks), every value that function returns must be
    plain data, or the attempt fails as `bad_answer_type`.
    """
    if not code.strip():
        return TestOutcome(False, "no_code", message="no code found in the output")
    try:
        compile(code, "solution.py", "exec")
    except SyntaxError as exc:
        return TestOutcome(False, "syntax_error", message=f"{exc.msg} (line {exc.lineno})")
    except ValueError as exc:  # e.g. null bytes in the source
        return TestOutcome(False, "syntax_error", message=str(exc))
    source = TEST_HEADER + tests + "\n" + setup_code + "\n"
    try:
        expected = expected_tests(source)
    except SyntaxError as exc:
        return TestOutcome(False, "no_tests", message=f"the tests do not parse: {exc}")
    if not expected:
        return TestOutcome(False, "no_tests", message="the test source defines no tests")
    nonce = secrets.token_hex(16)
    spec = {
        "source": source,
        "nonce": nonce,
        "entry_point": entry_point,
        "typed": entry_point is not None,
    }
    files = {"solution.py": code, "test_solution.py": PLACEHOLDER, **(extra_files or {})}
    command = [sys.executable, "-I", helper_path("harness.py"), "{secret_fd}", "{channel_fd}"]
    result = run_sandboxed(
        command,
        files,
        limits,
        stdin=NCB_STDIN,
        secret=json.dumps(spec).encode(),
        channel=True,
    )
    return _outcome(result, nonce, expected)


def _outcome(result: ExecResult, nonce: str, expected: set[str]) -> TestOutcome:
    outcome = TestOutcome(False, "crash", wall_s=result.wall_s, isolation=result.isolation)
    outcome.tests_total = len(expected)
    tail = (result.stdout + result.stderr)[-4000:]
    forks_refused = (
        result.tasks_exceeded or "BlockingIOError" in tail or "temporarily unavailable" in tail
    )
    if result.timed_out:
        outcome.reason = "process_limit" if forks_refused else "timeout"
        outcome.message = f"wall-clock limit reached\n{tail}"
        return outcome
    report = parse_report(result.channel, nonce)
    if report is None:
        by_signal = reason_from_signal(result.signal)
        if result.memory_exceeded or "MemoryError" in tail:
            outcome.reason = "memory"
        elif forks_refused and (by_signal or result.channel):
            outcome.reason = "process_limit"  # forked children garbled or killed the report
        elif by_signal:
            outcome.reason = by_signal
        elif result.channel:
            outcome.reason = "tampering"  # something wrote to the channel, not the harness
        else:
            outcome.reason = "early_exit"  # the process ended before the harness reported
        outcome.message = tail
        return outcome
    judge(report, expected, outcome)
    if outcome.reason == "no_tests_ran" and ("SystemExit" in tail or report["exit"] == 3):
        outcome.reason = "early_exit"  # pytest caught the program's exit while collecting
    if not outcome.passed and outcome.reason in ("runtime_error", "crash", "missing_results"):
        if result.memory_exceeded:
            outcome.reason = "memory"
        elif forks_refused:
            outcome.reason = "process_limit"
    if not outcome.message:
        outcome.message = tail
    return outcome
