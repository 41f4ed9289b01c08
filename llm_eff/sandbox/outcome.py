"""The outcome of running a program's tests in the sandbox, with a reason for failure."""

from __future__ import annotations

import signal as _signal
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field

REASONS = (
    "passed",
    "failed_assertion",
    "runtime_error",
    "syntax_error",
    "compile_error",
    "timeout",
    "memory",
    "process_limit",
    "missing_input",
    "network_denied",
    "permission_denied",
    "crash",
    "no_tests",
    "no_code",
    # verdict integrity (the harness and supervisor, see python_tests.py)
    "tampering",
    "no_tests_ran",
    "early_exit",
    "interrupted",
    "bad_answer_type",
    "missing_results",
)


@dataclass
class TestOutcome:
    """Per-test results of one program plus one reason summarising why it did not pass."""

    passed: bool
    reason: str
    tests_passed: int = 0
    tests_total: int = 0
    per_test: dict[str, str] = field(default_factory=dict)
    message: str = ""
    wall_s: float = 0.0
    isolation: str = ""
    runtime_s: float | None = None  # CPU time of the timed workload, where a benchmark times it

    @property
    def score(self) -> float:
        """Fraction of tests that passed (0 when none ran)."""
        return self.tests_passed / self.tests_total if self.tests_total else 0.0

    def to_dict(self) -> dict:
        """JSON-ready form for an attempt's details."""
        return asdict(self)


def parse_junit(xml_bytes: bytes) -> dict[str, tuple[str, str]]:
    """Map each test case in a JUnit XML report to (status, message)."""
    results: dict[str, tuple[str, str]] = {}
    root = ET.fromstring(xml_bytes)
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                status = child.tag
                message = (child.get("message") or "") + "\n" + (child.text or "")
                break
            if child.tag == "skipped":
                status = "skipped"
        results[name] = (status, message.strip())
    return results


def apply_test_results(
    outcome: TestOutcome, per_test: dict[str, tuple[str, str]], tail: str
) -> TestOutcome:
    """Fill `outcome` from per-test (status, message) results: counts, verdict and reason."""
    outcome.per_test = {name: status for name, (status, _) in per_test.items()}
    outcome.tests_total = len(per_test)
    outcome.tests_passed = sum(s == "passed" for s, _ in per_test.values())
    failures = [m for s, m in per_test.values() if s in ("failure", "error")]
    if failures:
        outcome.message = failures[0][:2000] + "\n...\n" + tail[-1500:]
    if outcome.tests_total and outcome.tests_passed == outcome.tests_total:
        outcome.passed, outcome.reason = True, "passed"
    else:
        outcome.passed = False
        outcome.reason = classify(failures) if failures else "no_tests"
    return outcome


def classify(messages: list[str]) -> str:
    """The reason behind failing tests, from their messages (memory beats assertion).

    `missing_input` marks tests that failed only because a file or data resource they expect
    (NCB's per-problem input files, nltk corpora) is absent, not because of the program.
    """
    joined = "\n".join(messages)
    if "MemoryError" in joined or "OutOfMemoryError" in joined:
        return "memory"
    if "SyntaxError" in joined or "IndentationError" in joined:
        return "syntax_error"
    if "BlockingIOError" in joined or "Resource temporarily unavailable" in joined:
        return "process_limit"
    if "Network is unreachable" in joined or "Temporary failure in name resolution" in joined:
        return "network_denied"
    if "Permission denied" in joined or "Read-only file system" in joined:
        return "permission_denied"
    missing = ("FileNotFoundError", "FileNotFoundException", "NoSuchFileException")
    if all(
        any(x in m for x in missing) or ("Resource" in m and "not found" in m) for m in messages
    ):
        return "missing_input"
    if all(("AssertionError" in m or m.startswith("assert") or "expected:" in m) for m in messages):
        return "failed_assertion"
    return "runtime_error"


def reason_from_signal(sig: int | None) -> str | None:
    """A failure reason implied by the signal that killed the test process, if any."""
    if sig is None:
        return None
    if sig in (_signal.SIGXCPU, _signal.SIGKILL):
        return "timeout"
    if sig == _signal.SIGXFSZ:
        return "crash"
    return "crash"
