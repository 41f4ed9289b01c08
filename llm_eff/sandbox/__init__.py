"""Untrusted-code execution: a jailed subprocess with limits, no network and a scrubbed env.

Entry points: `run_sandboxed` (any command), `run_python_tests` (pytest tests against a
program), `run_java_tests` (JUnit 5 tests against Java sources), `Limits`, `TestOutcome`.
"""

from llm_eff.sandbox.java_tests import run_java_tests
from llm_eff.sandbox.limits import Limits
from llm_eff.sandbox.outcome import TestOutcome
from llm_eff.sandbox.python_tests import run_python_tests
from llm_eff.sandbox.runner import ExecResult, run_sandboxed

__all__ = [
    "ExecResult",
    "Limits",
    "TestOutcome",
    "run_java_tests",
    "run_python_tests",
    "run_sandboxed",
]
