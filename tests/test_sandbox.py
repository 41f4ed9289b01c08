"""Real hostile programs run in the sandbox: each is contained and reported with its reason."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from llm_eff.sandbox import Limits, run_python_tests, run_sandboxed
from llm_eff.sandbox.isolation import isolation_mode

from .conftest import JAVA_LIBS, NO_JDK, procs_with

FAST = Limits(wall_s=10, cpu_s=5)


def test_passing_and_failing_programs():
    ok = run_python_tests("def f(x):\n    return x + 1\n", "def test_a():\n    assert f(1) == 2\n")
    assert ok.passed and ok.reason == "passed" and ok.tests_total == 1
    bad = run_python_tests(
        "def f(x):\n    return x\n",
        "def test_a():\n    assert f(1) == 1\n\ndef test_b():\n    assert f(1) == 2\n",
    )
    assert not bad.passed and bad.reason == "failed_assertion"
    assert (bad.tests_passed, bad.tests_total) == (1, 2) and bad.score == 0.5


def test_syntax_error_is_reported():
    out = run_python_tests("def f(:\n", "def test_a():\n    assert True\n")
    assert not out.passed and out.reason == "syntax_error"


def test_infinite_loop_hits_time_limit():
    start = time.monotonic()
    out = run_python_tests(
        "def spin():\n    while True:\n        pass\n",
        "def test_a():\n    spin()\n",
        limits=Limits(wall_s=4, cpu_s=60),
    )
    assert not out.passed and out.reason == "timeout"
    assert time.monotonic() - start < 15


def test_cpu_limit_kills_busy_program():
    out = run_python_tests(
        "while True:\n    pass\n",
        "def test_a():\n    assert True\n",
        limits=Limits(wall_s=30, cpu_s=2),
    )
    assert not out.passed and out.reason == "timeout"
    assert out.wall_s < 20


def test_memory_hog_is_stopped():
    out = run_python_tests(
        "def hog():\n    return bytearray(64 * 1024**3)\n",
        "def test_a():\n    hog()\n",
        limits=Limits(wall_s=20, memory_mb=1024),
    )
    assert not out.passed and out.reason == "memory"


def test_busy_child_left_behind_is_killed():
    marker = f"orphan_marker_{os.getpid()}_{time.monotonic_ns()}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'while True: pass', '{marker}'],\n"
        "                 start_new_session=True)\n"
        "def f():\n    return 1\n"
    )
    out = run_python_tests(code, "def test_a():\n    assert f() == 1\n", limits=FAST)
    assert out.passed  # the program's own tests pass...
    time.sleep(0.5)
    assert procs_with(marker) == []  # ...and its detached busy child is gone


@pytest.mark.skipif(isolation_mode() == "rlimits-only", reason="needs a network namespace")
def test_socket_to_outside_is_refused():
    code = (
        "import socket\n"
        "def fetch():\n"
        "    return socket.create_connection(('1.1.1.1', 80), timeout=3)\n"
    )
    out = run_python_tests(code, "def test_a():\n    assert fetch()\n", limits=FAST)
    assert not out.passed and out.reason == "network_denied"


@pytest.mark.skipif(isolation_mode() == "rlimits-only", reason="needs mount namespace")
def test_writes_outside_work_dir_do_not_reach_host(tmp_path: Path):
    host_target = Path(__file__).resolve().parent / "_sandbox_escape.txt"
    tmp_target = Path("/tmp/llm_eff_sandbox_escape.txt")
    code = (
        "def write_tmp():\n"
        f"    open('{tmp_target}', 'w').write('x')\n"
        "def write_host():\n"
        f"    open('{host_target}', 'w').write('x')\n"
    )
    tests = "def test_tmp():\n    write_tmp()\n\ndef test_host():\n    write_host()\n"
    out = run_python_tests(code, tests, limits=FAST)
    assert not out.passed and out.per_test == {"test_tmp": "passed", "test_host": "failed"}
    # the tests folder is either hidden from the jail or read-only in it, by where it lies
    assert out.reason in ("permission_denied", "missing_input"), out
    assert not host_target.exists()
    assert not tmp_target.exists()  # /tmp inside is a private tmpfs


def test_secret_in_parent_env_is_invisible(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLM_EFF_TEST_SECRET", "s3cr3t-value")
    code = (
        "import os, glob\n"
        "def leaked():\n"
        "    found = os.environ.get('LLM_EFF_TEST_SECRET', '')\n"
        "    for path in glob.glob('/proc/*/environ'):\n"
        "        try:\n"
        "            found += open(path, 'rb').read().decode(errors='ignore')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 's3cr3t-value' in found\n"
    )
    out = run_python_tests(code, "def test_a():\n    assert leaked()\n", limits=FAST)
    assert not out.passed and out.reason == "failed_assertion"


def test_output_flood_is_capped():
    result = run_sandboxed(
        [sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"],
        limits=Limits(wall_s=10, file_mb=2, output_kb=64),
    )
    assert len(result.stdout) < 70 * 1024
    assert result.wall_s < 10


@pytest.mark.skipif(not shutil.which("javac"), reason=NO_JDK)
def test_java_program_and_compile_error():
    from llm_eff.sandbox import run_java_tests

    tests = (
        "import org.junit.jupiter.api.Test;\nimport static org.junit.jupiter.api.Assertions.*;\n"
        "class AdderTest {\n  @Test\n  void adds() { assertEquals(5, Adder.add(2, 3)); }\n"
        "  @Test\n  void negative() { assertEquals(0, Adder.add(-1, 1)); }\n}\n"
    )
    good = "public class Adder {\n  public static int add(int a, int b) { return a + b; }\n}\n"
    out = run_java_tests(good, tests, JAVA_LIBS)
    assert out.passed and out.tests_total == 2, out.message
    wrong = "public class Adder {\n  public static int add(int a, int b) { return a - b; }\n}\n"
    assert run_java_tests(wrong, tests, JAVA_LIBS).reason == "failed_assertion"
    broken = "public class Adder {\n  public static int add(int a, int b) { return a + }\n}\n"
    assert run_java_tests(broken, tests, JAVA_LIBS).reason == "compile_error"


def test_program_own_tests_are_not_collected():
    code = (
        "def double(x):\n    return 2 * x\n\n"
        "def test_double(fixture_that_does_not_exist):\n    assert False\n\n"
        "class TestMine:\n    def test_x(self):\n        assert False\n"
    )
    out = run_python_tests(
        code, "class TestDouble:\n    def test_a(self):\n        assert double(2) == 4\n"
    )
    assert out.passed and out.tests_total == 1


def test_paths_under_tmp_can_be_revealed_read_only(tmp_path: Path):
    """An interpreter or library under /tmp (e.g. a clone there) stays usable inside the jail."""
    tmp_path.chmod(0o755)  # pytest makes it private to its user; a clone or venv is not
    (tmp_path / "lib.txt").write_text("visible")
    script = (
        f"print(open('{tmp_path}/lib.txt').read())\n"
        "try:\n"
        f"    open('{tmp_path}/new.txt', 'w')\n"
        "except OSError as exc:\n"
        "    print('denied', exc.errno)\n"
    )
    result = run_sandboxed([sys.executable, "-c", script], reveal=(str(tmp_path),))
    assert result.stdout.split()[0] == "visible"
    assert "denied" in result.stdout and not (tmp_path / "new.txt").exists()


def test_sandbox_failure_is_not_blamed_on_the_program():
    from llm_eff.core import SandboxError

    with pytest.raises(SandboxError, match="could not start"):
        run_sandboxed(["/nonexistent/interpreter", "-c", "pass"])
