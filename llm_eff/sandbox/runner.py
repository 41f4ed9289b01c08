"""Run an untrusted command in a jail: fresh work dir, limits, no network, scrubbed env.

`run_sandboxed` is the one entry point; language runners (`python_tests`, `java_tests`) build
on it. The host side creates the work dir, writes the files, starts `unshare` + `jail.py` in a
new session, enforces the wall-clock limit by killing the whole process group, and removes the
work dir afterwards. See `isolation.py` for what each isolation mode guarantees.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from llm_eff.core.errors import SandboxError
from llm_eff.sandbox.isolation import isolation_mode, unshare_prefix
from llm_eff.sandbox.limits import Limits

JAIL = str(Path(__file__).with_name("jail.py"))
SAFE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    "MPLBACKEND": "Agg",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
}
_UID_BASE = 200_000 + (os.getpid() % 4096) * 64
_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass
class ExecResult:
    """What happened to one sandboxed command."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    wall_s: float
    isolation: str
    signal: int | None = None
    files: dict[str, bytes] = field(default_factory=dict)


def _next_uid() -> int:
    with _uid_lock:
        return _UID_BASE + next(_uid_counter) % 64


SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def _reveal_paths(extra: list[str]) -> tuple[list[str], list[str]]:
    """Home dirs to hide, and the paths under them or under the scratch dirs (which the jail
    replaces with empty tmpfs) that the interpreter and `extra` must still see."""
    homes = {"/root", os.path.realpath(Path.home())} - {"/"}
    hide = sorted(h for h in homes if os.path.isdir(h))
    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, *extra}
    wanted |= {p for p in sys.path if p and os.path.isdir(p)}
    wanted |= {os.path.realpath(p) for p in wanted}
    covered = [*hide, *SCRATCH]
    reveal = sorted(
        (p for p in wanted if any(p.startswith(root + "/") for root in covered)), key=len
    )
    return hide, reveal


def _read_capped(path: Path, limit: int) -> str:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output truncated]" if len(data) > limit else "")


def run_sandboxed(
    command: list[str],
    files: dict[str, str | bytes] | None = None,
    limits: Limits | None = None,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    collect: tuple[str, ...] = (),
    reveal: tuple[str, ...] = (),
) -> ExecResult:
    """Run `command` in a fresh jailed work dir holding `files`; return its outcome.

    `collect` names files (or glob patterns) to read back from the work dir after the run,
    e.g. test reports.
    The command sees its work dir as the current directory; paths in `command` that point into
    it should be relative.
    """
    limits = limits or Limits()
    mode = isolation_mode()
    host_tmp = Path(tempfile.mkdtemp(prefix="llm-eff-sbx-"))
    work = host_tmp / "work"
    work.mkdir()
    uid = _next_uid() if mode == "namespaces-root" else None
    try:
        for name, content in (files or {}).items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else content)
        if uid is not None:
            for path in [work, *work.rglob("*")]:
                os.chown(path, uid, uid)
        hide, shown = _reveal_paths(list(reveal))
        home = "/tmp/work" if mode != "rlimits-only" else str(work)
        cfg = {
            "namespaces": mode != "rlimits-only",
            "work": str(work),
            "hide": hide,
            "scratch": list(SCRATCH),
            "reveal": shown,
            "limits": limits.to_dict(),
            "uid": uid,
            "gid": uid,
            "env": {**SAFE_ENV, "HOME": home, "TMPDIR": "/tmp", **(env or {})},
        }
        status_r, status_w = os.pipe()
        argv = [
            *unshare_prefix(mode),
            sys.executable,
            "-I",
            "-S",
            JAIL,
            json.dumps(cfg),
            str(status_w),
            *command,
        ]
        out_path, err_path, in_path = (host_tmp / n for n in ("stdout", "stderr", "stdin"))
        in_path.write_bytes(stdin)
        start = time.monotonic()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err, open(in_path, "rb") as inp:
            proc = subprocess.Popen(
                argv,
                stdin=inp,
                stdout=out,
                stderr=err,
                env={},
                start_new_session=True,
                pass_fds=(status_w,),
            )
            os.close(status_w)
            try:
                proc.wait(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)
                proc.wait()
        wall = time.monotonic() - start
        cap = limits.output_kb * 1024
        status = _read_status(status_r)
        rc, sig = status.get("exit"), status.get("signal")
        if status.get("exec_failed"):
            raise SandboxError(
                f"the sandbox could not start {command[0]}: "
                + _read_capped(err_path, 2000).strip().removeprefix("sandbox: ")
            )
        collected = {}
        for pattern in collect:
            for path in sorted(work.glob(pattern)):
                if path.is_file() and not path.is_symlink():
                    name = str(path.relative_to(work))
                    collected[name] = path.read_bytes()[: 16 * 1024 * 1024]
        return ExecResult(
            returncode=rc,
            stdout=_read_capped(out_path, cap),
            stderr=_read_capped(err_path, cap),
            timed_out=timed_out,
            wall_s=wall,
            isolation=mode,
            signal=sig,
            files=collected,
        )
    finally:
        shutil.rmtree(host_tmp, ignore_errors=True)


def _read_status(fd: int) -> dict:
    """The jail's report of how the command ended ({} when the jail itself was killed)."""
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(4096)
    try:
        return json.loads(data) if data else {}
    except json.JSONDecodeError:
        return {}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
