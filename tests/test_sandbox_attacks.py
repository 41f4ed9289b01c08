"""Hostile programs against the scorer: each attack is a real program run in the real sandbox.

Every one must end as a failed attempt with the right reason, leave nothing on the host, and
leave no process behind. The attacks are the ones hostile testing found, plus the ways a
program could try to forge the verdict channel.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evals.benchmarks.humaneval import load_humaneval
from llm_eff.core.types import Task
from llm_eff.sandbox import Limits, run_python_tests, run_sandboxed
from llm_eff.sandbox.cgroups import cgroup_layout
from llm_eff.sandbox.isolation import isolation_mode
from llm_eff.sandbox.timing import measure_runtime

from .conftest import procs_with

FAST = Limits(wall_s=15, cpu_s=10)
ADD_TESTS = (
    "def test_one():\n    assert add(1, 2) == 3\n\ndef test_two():\n    assert add(2, 2) == 4\n"
)
WRONG_ADD = "def add(a, b):\n    return a - b\n"
needs_bwrap = pytest.mark.skipif(isolation_mode() != "bwrap", reason="needs bubblewrap")
needs_cgroups = pytest.mark.skipif(
    cgroup_layout() is None or os.geteuid() != 0, reason="needs writable cgroups (root)"
)


# --- forged verdicts -----------------------------------------------------------------------


def test_overwritten_junit_report_does_not_pass():
    code = WRONG_ADD + (
        "import atexit\n"
        "def _forge():\n"
        "    open('report.xml', 'w').write(\n"
        '        \'<testsuite><testcase classname="t" name="test_one"/>\'\n'
        '        \'<testcase classname="t" name="test_two"/></testsuite>\')\n'
        "atexit.register(_forge)\n"
    )
    out = run_python_tests(code, ADD_TESTS, limits=FAST)
    assert not out.passed and out.reason == "failed_assertion", out


def _humaneval_file(tmp_path: Path, solution: str) -> Path:
    record = {
        "task_id": "attack/0",
        "prompt": "def add(a, b):\n",
        "entry_point": "add",
        "canonical_solution": solution,
        "test": (
            "def check(candidate):\n"
            "    assert candidate(1, 2) == 3\n    assert candidate(5, 5) == 10\n"
        ),
    }
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def _score_reference(path: Path):
    bench = load_humaneval(str(path), timeout_s=15)
    task = bench.tasks[0]
    return bench.score(task, bench.reference_output(task))


def test_always_equal_object_fails_as_untyped(tmp_path: Path):
    solution = (
        "    class Same:\n"
        "        def __eq__(self, other):\n            return True\n"
        "        __hash__ = object.__hash__\n"
        "    return Same()\n"
    )
    out = _score_reference(_humaneval_file(tmp_path, solution))
    assert not out.passed and out.reason == "bad_answer_type", out


def test_int_subclass_with_forged_eq_fails_even_when_the_test_swallows_errors():
    code = (
        "class Int(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Int(0)\n"
    )
    tests = (
        "def test_a():\n    try:\n        assert add(1, 2) == 3\n"
        "    except Exception:\n        pass\n"
    )
    out = run_python_tests(code, tests, limits=FAST, entry_point="add")
    assert not out.passed and out.reason == "bad_answer_type", out


def test_honest_humaneval_solution_still_passes(tmp_path: Path):
    out = _score_reference(_humaneval_file(tmp_path, "    return a + b\n"))
    assert out.passed and out.reason == "passed", out


def test_program_cannot_read_its_tests_from_disk():
    code = (
        "import glob, os, re\n"
        "def answer():\n"
        "    paths = glob.glob('**/*', recursive=True) + glob.glob('/tmp/**/*', recursive=True)\n"
        "    for path in paths:\n"
        "        try:\n"
        "            m = re.search(r'answer\\(\\) == (\\d+)', open(path).read())\n"
        "        except (OSError, ValueError):\n"
        "            continue\n"
        "        if m:\n"
        "            return int(m.group(1))\n"
        "    return -1\n"
    )
    out = run_python_tests(code, "def test_a():\n    assert answer() == 918273\n", limits=FAST)
    assert not out.passed and out.reason == "failed_assertion", out


@needs_bwrap
def test_repository_and_package_data_are_invisible(tmp_path: Path):
    repo = Path(__file__).resolve().parents[1]
    code = (
        "import importlib, os\n"
        "def seen():\n"
        "    found = []\n"
        "    for name in ('evals', 'llm_eff', 'routers', 'agents'):\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "            found.append(name)\n"
        "        except ImportError:\n"
        "            pass\n"
        f"    for path in ({str(repo / 'README.md')!r}, {str(repo / 'evals')!r},\n"
        f"                 {str(tmp_path)!r}, '/root', '/home', '/work'):\n"
        "        if os.path.exists(path) and (os.path.isfile(path) or os.listdir(path)):\n"
        "            found.append(path)\n"
        "    return found\n"
    )
    (tmp_path / "other_task_tests.py").write_text("secret = 1\n")
    tests = "def test_a():\n    assert seen() == ['nothing']\n"
    out = run_python_tests(code, tests, limits=FAST)
    assert not out.passed and out.reason == "failed_assertion"
    shown = out.message
    for leaked in ("README.md", "'evals'", "other_task", str(tmp_path)):
        assert leaked not in shown.split("assert")[-1], (leaked, shown[-600:])


@pytest.mark.parametrize(
    ("name", "code", "tests", "reason"),
    [
        ("exit at import", "import sys\nsys.exit(0)\n", ADD_TESTS, "early_exit"),
        ("os._exit at import", "import os\nos._exit(0)\n", ADD_TESTS, "early_exit"),
        (
            "os._exit in a test",
            "import os\ndef add(a, b):\n    os._exit(0)\n",
            ADD_TESTS,
            "early_exit",
        ),
        (
            "SystemExit in a test",
            "def add(a, b):\n    raise SystemExit(0)\n",
            ADD_TESTS,
            "early_exit",
        ),
        (
            "KeyboardInterrupt in a test",
            "def add(a, b):\n    raise KeyboardInterrupt\n",
            ADD_TESTS,
            "interrupted",
        ),
        (
            "planted conftest, ini and sitecustomize",
            WRONG_ADD + "open('conftest.py', 'w').write('import pytest\\n"
            "@pytest.hookimpl(hookwrapper=True)\\n"
            "def pytest_runtest_makereport(item, call):\\n"
            "    out = yield\\n"
            '    out.get_result().outcome = "passed"\\n\')\n'
            "open('pytest.ini', 'w').write('[pytest]\\naddopts = -p no:python\\n')\n"
            "open('sitecustomize.py', 'w').write('import os; os._exit(0)\\n')\n",
            ADD_TESTS,
            "failed_assertion",
        ),
        (
            "patched pytest runtest",
            WRONG_ADD
            + "import _pytest.python\n_pytest.python.Function.runtest = lambda self: None\n",
            ADD_TESTS,
            "tampering",
        ),
        (
            "patched report outcome",
            WRONG_ADD + "import _pytest.reports\n"
            "_orig = _pytest.reports.TestReport.from_item_and_call.__func__\n"
            "def _forged(cls, item, call):\n"
            "    rep = _orig(cls, item, call)\n"
            "    rep.outcome = 'passed'\n"
            "    return rep\n"
            "_pytest.reports.TestReport.from_item_and_call = classmethod(_forged)\n",
            ADD_TESTS,
            "tampering",
        ),
        (
            "forged channel message",
            "import os\n"
            "def add(a, b):\n"
            "    for fd in map(int, os.listdir('/proc/self/fd')):\n"
            "        try:\n"
            "            os.write(fd, b'R \\'test_one\\\\tcall\\\\tpassed\\\\t\\'\\nX 0\\n')\n"
            "        except OSError:\n"
            "            pass\n"
            "    os._exit(0)\n",
            ADD_TESTS,
            "tampering",
        ),
        ("no tests at all", WRONG_ADD, "def helper():\n    pass\n", "no_tests"),
        (
            "tests skipped by the program",
            WRONG_ADD + "import pytest\npytest.skip('nothing to see', allow_module_level=True)\n",
            ADD_TESTS,
            "no_tests_ran",
        ),
    ],
)
def test_tampering_never_passes(name: str, code: str, tests: str, reason: str):
    out = run_python_tests(code, tests, limits=FAST)
    assert not out.passed, name
    assert out.reason == reason, (name, out.reason, out.message[-800:])
    assert out.tests_passed < 2


def test_forged_timer_gets_the_honest_runtime():
    honest = "def add(a, b):\n    return sum(range(20000)) * 0 + a + b\n"
    tampered = honest + (
        "import statistics, time\n"
        "statistics.median = lambda xs: 1e-12\n"
        "time.process_time = lambda: 0.0\n"
        "time.perf_counter = lambda: 0.0\n"
    )
    task = Task(
        id="t",
        prompt="",
        tests=ADD_TESTS,
        metadata={"workload": "def workload():\n    add(1, 2)\n"},
    )
    fast = measure_runtime(honest, task, repeats=3)
    forged = measure_runtime(tampered, task, repeats=3)
    assert fast is not None and forged is not None
    assert 0.5 < forged / fast < 2.0, (fast, forged)


def test_rl_reward_of_a_tampered_timer_equals_the_honest_one():
    from llm_eff.rl.reward import ExecutionReward, RewardConfig

    honest = "def add(a, b):\n    return sum(range(20000)) * 0 + a + b\n"
    tampered = honest + "import statistics\nstatistics.median = lambda xs: 1e-12\n"
    task = Task(
        id="t",
        prompt="",
        tests=ADD_TESTS,
        entry_point="add",
        reference="def add(a, b):\n    return a + b\n",
        metadata={"workload": "def workload():\n    add(1, 2)\n"},
    )
    reward = ExecutionReward(RewardConfig(repeats=3))
    a, b = reward(honest, task), reward(tampered, task)
    assert abs(a.reward - b.reward) < 0.15, (a, b)


# --- host resources ------------------------------------------------------------------------


@needs_bwrap
def test_host_unix_sockets_are_unreachable(tmp_path: Path):
    tmp_path.chmod(0o755)
    path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    targets = [str(path)] + [str(p) for p in Path("/run/postgresql").glob(".s.PGSQL.*")]
    try:
        code = (
            "import socket\n"
            "def reach():\n"
            "    ok = []\n"
            f"    for path in {targets!r}:\n"
            "        s = socket.socket(socket.AF_UNIX)\n"
            "        try:\n"
            "            s.connect(path)\n"
            "            ok.append(path)\n"
            "        except OSError:\n"
            "            pass\n"
            "    return ok\n"
        )
        out = run_python_tests(code, "def test_a():\n    assert reach()\n", limits=FAST)
        assert not out.passed and out.reason == "failed_assertion", out
    finally:
        server.close()


@pytest.mark.skipif(isolation_mode() == "rlimits-only", reason="needs mount namespaces")
def test_no_channel_between_tasks_through_shared_dirs():
    dirs = ("/run/lock", "/tmp", "/dev/shm", "/var/tmp", "/run")
    writer = (
        "import os\n"
        f"for d in {dirs!r}:\n"
        "    try:\n"
        "        os.makedirs(d, exist_ok=True)\n"
        "        open(os.path.join(d, 'llm_eff_channel_7731'), 'w').write('hello')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    reader = (
        "import os\n"
        f"print(sum(os.path.exists(os.path.join(d, 'llm_eff_channel_7731')) for d in {dirs!r}))\n"
    )
    run_sandboxed([sys.executable, "-c", writer])
    assert run_sandboxed([sys.executable, "-c", reader]).stdout.strip() == "0"
    assert not any(Path(d, "llm_eff_channel_7731").exists() for d in dirs)


@needs_bwrap
def test_disk_flood_stays_inside_the_jail():
    free_before = shutil.disk_usage(tempfile.gettempdir()).free
    code = (
        "def flood():\n"
        "    n = 0\n"
        "    for i in range(80):\n"
        "        try:\n"
        "            with open(f'big{i}', 'wb') as fh:\n"
        "                fh.write(b'x' * (64 << 20))\n"
        "            n += 1\n"
        "        except OSError:\n"
        "            break\n"
        "    return n\n"
    )
    limits = Limits(wall_s=30, cpu_s=30, memory_mb=1024, disk_mb=128)
    out = run_python_tests(code, "def test_a():\n    assert flood() == 80\n", limits=limits)
    assert not out.passed
    assert shutil.disk_usage(tempfile.gettempdir()).free > free_before - (200 << 20)


@needs_bwrap
@needs_cgroups
def test_million_files_are_stopped():
    code = (
        "def many():\n"
        "    for i in range(10**6):\n"
        "        open(f'f{i}', 'w').close()\n"
        "    return True\n"
    )
    start = time.monotonic()
    out = run_python_tests(
        code,
        "def test_a():\n    assert many()\n",
        limits=Limits(wall_s=60, cpu_s=60, memory_mb=256),
    )
    assert not out.passed and out.reason in ("memory", "runtime_error", "early_exit"), out
    assert time.monotonic() - start < 60


@needs_cgroups
def test_memory_limit_holds_for_all_children_together():
    code = (
        "import os, time\n"
        "def hog():\n"
        "    kids = []\n"
        "    for _ in range(4):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            block = bytearray(400 << 20)\n"
        "            for i in range(0, len(block), 4096):\n"
        "                block[i] = 1\n"
        "            time.sleep(5)\n"
        "            os._exit(0)\n"
        "        kids.append(pid)\n"
        "    return [os.waitpid(p, 0)[1] for p in kids]\n"
    )
    limits = Limits(wall_s=30, cpu_s=30, memory_mb=1024)
    out = run_python_tests(code, "def test_a():\n    assert hog() == [0, 0, 0, 0]\n", limits=limits)
    assert not out.passed and out.reason in ("memory", "failed_assertion"), out


@needs_bwrap
def test_hardening_no_new_privs_no_caps_no_user_namespaces():
    script = (
        "import subprocess\n"
        "status = open('/proc/self/status').read()\n"
        "print(status.split('NoNewPrivs:')[1].split()[0], status.split('CapEff:')[1].split()[0])\n"
        "r = subprocess.run(['unshare', '-Ur', 'true'], capture_output=True)\n"
        "print('userns', r.returncode)\n"
    )
    out = run_sandboxed([sys.executable, "-c", script]).stdout.split()
    assert out[0] == "1" and int(out[1], 16) == 0
    assert out[2] == "userns" and out[3] != "0"


@pytest.mark.skipif(isolation_mode() not in ("bwrap", "namespaces-root"), reason="needs a uid")
def test_fork_bomb_counts_only_its_own_processes():
    marker = f"bomb_marker_{os.getpid()}_{time.monotonic_ns()}"
    code = (
        "import os, subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'],\n"
        "                 start_new_session=True)\n"
        "def bomb():\n    while True:\n        os.fork()\n"
    )
    out = run_python_tests(code, "def test_a():\n    bomb()\n", limits=Limits(wall_s=5, nproc=32))
    assert not out.passed and out.reason == "process_limit", out
    time.sleep(0.3)
    assert procs_with(marker) == []
    alive = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True)
    assert alive.stdout.strip() == "ok"
