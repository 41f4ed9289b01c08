"""Run JUnit tests (Jupiter, and JUnit 4 through the vintage engine) against Java sources in
the sandbox (NaturalCodeBench Java).

The program's top-level types lose their `public` modifier and go into `Solution.java` (so
file names need not match class names), the test class into `<TestClass>.java`; both compile
with `javac` against the JUnit console launcher and the libraries NCB's tests use (fastjson2,
jsoup, lombok), then the console launcher runs the test class and writes JUnit XML reports.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from llm_eff.core.errors import UserError
from llm_eff.sandbox.limits import Limits
from llm_eff.sandbox.outcome import TestOutcome, apply_test_results, parse_junit, reason_from_signal
from llm_eff.sandbox.runner import run_sandboxed

JVM_FLAGS = "-Xmx512m -Xss1m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=64m"
_TOP_PUBLIC = re.compile(
    r"^public\s+(?=(?:(?:final|abstract|sealed|static)\s+)*(?:class|interface|enum|record|@interface)\b)",
    re.M,
)
_PACKAGE = re.compile(r"^\s*package\s+[\w.]+\s*;", re.M)
_IMPORT = re.compile(r"^\s*import\s+[\w.*\s]+;\s*$", re.M)
_TEST_METHOD = re.compile(
    r"@(?:Test|ParameterizedTest|RepeatedTest|TestFactory)\b(?:\([^)]*\))?"
    r"(?:\s*@\w+(?:\([^)]*\))?)*\s+(?:public\s+|protected\s+)?(?:static\s+)?\w+\s+(\w+)\s*\("
)


def expected_java_tests(tests: str) -> set[str]:
    """Names of the test methods in the JUnit source (annotated @Test and its kin)."""
    return set(_TEST_METHOD.findall(tests))


def cross_check(per_test: dict[str, tuple[str, str]], expected: set[str]) -> dict | None:
    """Per-test results limited to the expected methods, or None when the report names a
    test the source does not have (a report the program wrote). Missing ones fail."""
    by_method: dict[str, tuple[str, str]] = {}
    for name, result in per_test.items():
        method = name.rsplit("::", 1)[-1].split("(", 1)[0]
        if method not in expected:
            return None
        if method not in by_method or result[0] != "passed":
            by_method[method] = result
    for method in expected - set(by_method):
        by_method[method] = ("missing", "the test reported no result")
    return by_method


def _prepare(source: str, open_types: bool = True) -> tuple[list[str], str]:
    """Split Java source into (imports, body), packages dropped; with `open_types`, top-level
    types lose `public` so that several can share one file."""
    source = _PACKAGE.sub("", source)
    imports = [m.group(0).strip() for m in _IMPORT.finditer(source)]
    body = _IMPORT.sub("", source)
    return imports, _TOP_PUBLIC.sub("", body) if open_types else body


def _libs_classpath(libs_dir: Path) -> tuple[str, str]:
    jars = sorted(libs_dir.glob("*.jar"))
    console = [j for j in jars if "console-standalone" in j.name]
    if not console:
        raise UserError(
            f"{libs_dir}: no junit-platform-console-standalone jar; "
            "point --java-libs at NCB's JUnit folder"
        )
    others = [j for j in jars if not j.name.startswith("junit-")]
    return str(console[0]), ":".join(str(j) for j in [console[0], *others])


def run_java_tests(
    code: str, tests: str, libs_dir: str | Path, limits: Limits | None = None
) -> TestOutcome:
    """Compile `code` with the JUnit `tests` and run them in the sandbox."""
    if not code.strip():
        return TestOutcome(False, "no_code", message="no code found in the output")
    libs = Path(libs_dir).resolve()
    if not libs.is_dir():
        raise UserError(f"Java libraries folder not found: {libs}")
    console, classpath = _libs_classpath(libs)
    limits = limits or Limits(wall_s=60, cpu_s=60, memory_mb=8192, nproc=256)
    code_imports, code_body = _prepare(code)
    test_imports, test_body = _prepare(tests, open_types=False)  # JUnit 4 needs public classes
    imports = sorted(set(code_imports) | set(test_imports))
    header = "\n".join(imports) + "\n"
    match = re.search(r"class\s+(\w+)", test_body)
    if not match:
        return TestOutcome(False, "no_tests", message="no test class in the test cases")
    test_class = match.group(1)
    test_file = f"{test_class}.java"
    files = {"Solution.java": header + code_body, test_file: header + test_body}
    script = (
        f"javac -J-Xmx512m -nowarn -encoding UTF-8 -cp {shlex.quote(classpath)} -d out "
        f"Solution.java {test_file} > compile.log 2>&1 || {{ cat compile.log; exit 42; }}; "
        f"java {JVM_FLAGS} -jar {shlex.quote(console)} --disable-banner --details=none "
        f"--class-path out:{shlex.quote(classpath)} --select-class {test_class} "
        "--reports-dir reports"
    )
    result = run_sandboxed(
        ["/bin/sh", "-c", script],
        files,
        limits,
        collect=("reports/TEST-*.xml",),
        reveal=(str(libs),),
    )
    tail = (result.stdout + result.stderr)[-4000:]
    outcome = TestOutcome(
        False, "crash", message=tail, wall_s=result.wall_s, isolation=result.isolation
    )
    if result.timed_out:
        outcome.reason = "timeout"
        return outcome
    if result.returncode == 42:
        outcome.reason = "compile_error"
        return outcome
    reports = [data for name, data in result.files.items() if name.startswith("reports/")]
    if not reports:
        outcome.reason = reason_from_signal(result.signal) or (
            "memory" if "OutOfMemoryError" in tail else "crash"
        )
        return outcome
    per_test = {k: v for data in reports for k, v in parse_junit(data).items()}
    expected = expected_java_tests(test_body)
    if expected:
        checked = cross_check(per_test, expected)
        if checked is None:
            outcome.reason = "tampering"
            outcome.message = "the test report names tests the test source does not have"
            return outcome
        per_test = checked
    return apply_test_results(outcome, per_test, tail)
