"""Run an untrusted command in a jail: private work dir, limits, no network, scrubbed env.

`run_sandboxed` is the one entry point; language runners (`python_tests`, `java_tests`) and
the runtime measurement (`timing`) build on it. The supervisor (this module, in the host
process) gives the run a cgroup and, as root, a uid of its own; hands the jail its
configuration and the program's files on a memfd; starts bubblewrap (or the `unshare`
fallback, see `isolation.py`) with `jail.py` as the jail's init; enforces the wall-clock limit;
reads output through size-capped pipes; and afterwards kills whatever is left in the run's
cgroup and removes it. CPU time comes from the kernel (the cgroup's accounting, else the
rusage of the reaped process tree), never from the program.

Two optional descriptors connect a trusted helper inside the jail to the supervisor:
`secret` (bytes the jail's init writes down a pipe, e.g. the test source, which the helper
reads to its end before any untrusted code runs) and `channel` (a pipe back, e.g. per-test
results). Their numbers replace `{secret_fd}` and `{channel_fd}` in the command.
"""

from __future__ import annotations

import base64
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
from llm_eff.sandbox.cgroups import RunCgroup
from llm_eff.sandbox.isolation import (
    HELPERS_DIR,
    bwrap_flags,
    inner_bwrap,
    isolation_mode,
    unshare_prefix,
)
from llm_eff.sandbox.limits import Limits

HELPERS = {
    name: str(Path(__file__).with_name(name)) for name in ("jail.py", "harness.py", "timer.py")
}
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
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
CHANNEL_CAP = 8 * 1024 * 1024
_UID_BASE = 200_000 + (os.getpid() % 4096) * 64
_uid_counter = itertools.count()
_uid_lock = threading.Lock()
_JOIN_CGROUP = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'


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
    channel: bytes = b""
    cpu_s: float | None = None  # CPU time of the whole run, from the kernel
    memory_exceeded: bool = False  # the run's cgroup hit its memory cap
    tasks_exceeded: bool = False  # the run's cgroup refused a fork or thread


def helper_path(name: str) -> str:
    """Where the trusted helper `name` (e.g. 'harness.py') is seen from inside the jail."""
    return f"{HELPERS_DIR}/{name}" if isolation_mode() == "bwrap" else HELPERS[name]


def _next_uid() -> int:
    with _uid_lock:
        return _UID_BASE + next(_uid_counter) % 64


def _reveal_paths(extra: list[str]) -> tuple[list[str], list[str]]:
    """For the unshare fallback: home dirs to hide, and the paths under them or under the
    scratch dirs that the interpreter and `extra` must still see."""
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


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping at most `cap` bytes (the rest is read and dropped)."""

    def __init__(self, fd: int, cap: int, overflow: threading.Event | None = None):
        super().__init__(daemon=True)
        self.fd, self.cap, self.data, self.dropped = fd, cap, bytearray(), 0
        self.overflow = overflow

    def run(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self.fd, 1 << 16):
                room = self.cap - len(self.data)
                self.data += chunk[:room]
                self.dropped += max(0, len(chunk) - room)
                if self.dropped and self.overflow is not None:
                    self.overflow.set()  # output past its cap ends the run
        os.close(self.fd)

    def text(self) -> str:
        out = self.data.decode("utf-8", errors="replace")
        return out + ("\n[... output truncated]" if self.dropped else "")


def sizes_from(disk_mb: int) -> dict[str, int]:
    """tmpfs caps for a run with `disk_mb` of disk."""
    return {"/tmp": disk_mb << 20, "/dev/shm": disk_mb << 20}


def run_sandboxed(
    command: list[str],
    files: dict[str, str | bytes] | None = None,
    limits: Limits | None = None,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    collect: tuple[str, ...] = (),
    reveal: tuple[str, ...] = (),
    secret: bytes | None = None,
    channel: bool = False,
) -> ExecResult:
    """Run `command` in a fresh jailed work dir holding `files`; return its outcome.

    `collect` names files (or glob patterns) to read back from the work dir after the run;
    `reveal` extra host paths the program may read; `secret` and `channel`: see the module
    docstring. The command sees its work dir as the current directory.
    """
    limits = limits or Limits()
    mode = isolation_mode()
    as_root = os.geteuid() == 0
    own_uid = _next_uid() if as_root and mode in ("bwrap", "namespaces-root") else None
    host_tmp = Path(tempfile.mkdtemp(prefix="llm-eff-sbx-"))
    work = host_tmp / "work"
    work.mkdir()
    cgroup = RunCgroup.create(limits.memory_mb, limits.nproc, own_uid) if own_uid else None
    fds: list[int] = []
    try:
        channel_r, channel_w = os.pipe() if channel else (None, None)
        status_r, status_w = os.pipe()
        command = [str(channel_w) if arg == "{channel_fd}" else arg for arg in command]
        hide, shown = _reveal_paths(list(reveal))
        lim = limits.to_dict()
        if own_uid is None and mode != "namespaces-user":
            lim["nproc"] = None  # the caller's uid: its other processes would count too
        cfg = {
            "mode": mode,
            "work": str(work),
            "hide": hide,
            "scratch": list(SCRATCH),
            "reveal": shown,
            "limits": lim,
            "uid": own_uid,
            "gid": own_uid,
            "inner": inner_bwrap() if mode == "bwrap" and own_uid is not None else [],
            "env": {**SAFE_ENV, "HOME": "/tmp/work", "TMPDIR": "/tmp", **(env or {})},
            "files": {
                name: base64.b64encode(c.encode() if isinstance(c, str) else c).decode()
                for name, c in (files or {}).items()
            },
            "collect": list(collect),
            "secret": base64.b64encode(secret or b"").decode(),
            "command": command,
        }
        if mode == "rlimits-only":
            cfg["env"]["HOME"] = str(work)
        if own_uid is not None:
            os.chown(work, own_uid, own_uid)
        cfg_fd = _memfd("config", json.dumps(cfg).encode())
        stdin_fd = _memfd("stdin", stdin)
        fds += [cfg_fd, stdin_fd, status_w]
        passed = [cfg_fd, status_w, *([channel_w] if channel_w is not None else [])]
        if mode == "bwrap":
            flags = bwrap_flags(list(reveal), sizes_from(limits.disk_mb), HELPERS)
            argv = [
                shutil.which("bwrap") or "bwrap",
                *flags,
                sys.executable,
                "-I",
                "-S",
                f"{HELPERS_DIR}/jail.py",
            ]
        else:
            argv = [*unshare_prefix(mode), sys.executable, "-I", "-S", HELPERS["jail.py"]]
        argv += [str(cfg_fd), str(status_w)]
        if cgroup is not None:
            argv = ["/bin/sh", "-c", _JOIN_CGROUP, "sh", *cgroup.procs_files(), "--", *argv]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        cap = limits.output_kb * 1024
        done = threading.Event()
        drains = [_Drain(out_r, cap, done), _Drain(err_r, cap, done)]
        drains.append(_Drain(status_r, CHANNEL_CAP))
        if channel_r is not None:
            drains.append(_Drain(channel_r, CHANNEL_CAP))
        start = time.monotonic()
        proc = subprocess.Popen(
            argv,
            stdin=stdin_fd,
            stdout=out_w,
            stderr=err_w,
            env={},
            start_new_session=True,
            pass_fds=passed,
        )
        for fd in (out_w, err_w, channel_w, *fds):
            if fd is not None:
                os.close(fd)
        fds.clear()
        for drain in drains:
            drain.start()
        rusage: list = []

        def reap() -> None:
            rusage.append(os.wait4(proc.pid, 0))
            done.set()

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        timed_out = not done.wait(limits.wall_s)
        _kill_group(proc.pid)
        if cgroup is not None:
            cgroup.kill_all()
        waiter.join()
        proc.returncode = os.waitstatus_to_exitcode(rusage[0][1])
        wall = time.monotonic() - start
        if cgroup is not None:
            cgroup.kill_all()
        for drain in drains:
            drain.join(timeout=5)
        cpu = cgroup.cpu_seconds() if cgroup is not None else None
        if cpu is None:
            usage = rusage[0][2]
            cpu = usage.ru_utime + usage.ru_stime
        status = _parse_status(bytes(drains[2].data))
        stderr = drains[1].text()
        if status.get("exec_failed"):
            raise SandboxError(
                f"the sandbox could not start {command[0]}: "
                + stderr[:2000].strip().removeprefix("sandbox: ")
            )
        jail_failed = proc.returncode == 97 or "bwrap:" in stderr[:300]
        if not status and not timed_out and proc.returncode not in (0, -9) and jail_failed:
            raise SandboxError(f"the sandbox could not start: {stderr[:500].strip()}")
        return ExecResult(
            returncode=status.get("exit"),
            stdout=drains[0].text(),
            stderr=stderr,
            timed_out=timed_out,
            wall_s=wall,
            isolation=mode,
            signal=status.get("signal"),
            files={k: base64.b64decode(v) for k, v in status.get("files", {}).items()},
            channel=bytes(drains[3].data) if channel_r is not None else b"",
            cpu_s=cpu,
            memory_exceeded=cgroup.hit_memory_limit() if cgroup is not None else False,
            tasks_exceeded=cgroup.hit_task_limit() if cgroup is not None else False,
        )
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if cgroup is not None:
            cgroup.remove()
        shutil.rmtree(host_tmp, ignore_errors=True)


def _parse_status(data: bytes) -> dict:
    """The jail's report of how the command ended ({} when the jail itself was killed)."""
    try:
        return json.loads(data) if data else {}
    except json.JSONDecodeError:
        return {}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
