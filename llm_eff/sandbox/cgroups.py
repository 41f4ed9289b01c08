"""Aggregate limits for one sandboxed run: a cgroup per run, v1 or v2, where writable.

A run's cgroup caps the memory (resident pages, tmpfs pages and the kernel memory of its
inodes, all charged together), the number of tasks and, read back afterwards, the CPU time of
the program and every child it started. The program joins its cgroup itself, before it
`exec`s the jail, through a `cgroup.procs` file the supervisor hands over to the run's uid; the
limit files stay the supervisor's. Where no hierarchy is writable (not root, no delegation)
`RunCgroup.create` returns None and only per-process rlimits apply, which the run records.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "llm-eff"
_counter = itertools.count()


@functools.lru_cache(maxsize=1)
def cgroup_layout() -> str | None:
    """'v2', 'v1' or None: which writable hierarchy this process can make run cgroups in."""
    if os.environ.get("LLM_EFF_SANDBOX_CGROUPS") == "off":
        return None
    if (ROOT / "cgroup.controllers").exists():
        controllers = (ROOT / "cgroup.controllers").read_text().split()
        if {"memory", "pids"} <= set(controllers) and _can_make(ROOT / PARENT):
            with contextlib.suppress(OSError):
                (ROOT / "cgroup.subtree_control").write_text("+memory +pids +cpu")
            with contextlib.suppress(OSError):
                (ROOT / PARENT / "cgroup.subtree_control").write_text("+memory +pids +cpu")
            return "v2"
        return None
    needed = ("memory", "pids", "cpuacct")
    if all((ROOT / c).is_dir() and _can_make(ROOT / c / PARENT) for c in needed):
        return "v1"
    return None


def _can_make(path: Path) -> bool:
    try:
        path.mkdir(exist_ok=True)
        return os.access(path, os.W_OK)
    except OSError:
        return False


@dataclass
class RunCgroup:
    """The cgroup directories of one run and what they measured."""

    layout: str
    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, memory_mb: int, max_tasks: int, uid: int | None) -> RunCgroup | None:
        """A fresh cgroup with these caps, joinable by `uid`; None where cgroups are unusable."""
        layout = cgroup_layout()
        if layout is None:
            return None
        name = f"run-{os.getpid()}-{next(_counter)}"
        if layout == "v2":
            dirs = [ROOT / PARENT / name]
        else:
            dirs = [ROOT / c / PARENT / name for c in ("memory", "pids", "cpuacct")]
        group = cls(layout, dirs)
        try:
            for d in dirs:
                d.mkdir()
            limit = memory_mb * 1024 * 1024
            if layout == "v2":
                (dirs[0] / "memory.max").write_text(str(limit))
                with contextlib.suppress(OSError):
                    (dirs[0] / "memory.swap.max").write_text("0")
                (dirs[0] / "pids.max").write_text(str(max_tasks))
            else:
                (dirs[0] / "memory.limit_in_bytes").write_text(str(limit))
                with contextlib.suppress(OSError):
                    (dirs[0] / "memory.memsw.limit_in_bytes").write_text(str(limit))
                (dirs[1] / "pids.max").write_text(str(max_tasks))
            if uid is not None:
                for procs in group.procs_files():
                    os.chown(procs, uid, -1)
        except OSError:
            group.remove()
            return None
        return group

    def procs_files(self) -> list[str]:
        """The `cgroup.procs` files a process writes its pid to, to join this run."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) used by every task that ran in the group."""
        try:
            if self.layout == "v2":
                stat = dict(
                    line.split() for line in (self.dirs[0] / "cpu.stat").read_text().splitlines()
                )
                return int(stat["usage_usec"]) / 1e6
            return int((self.dirs[2] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, KeyError, ValueError):
            return None

    def hit_memory_limit(self) -> bool:
        """Whether the group's memory cap was reached (an allocation failed or OOM-killed)."""
        try:
            if self.layout == "v2":
                events = (self.dirs[0] / "memory.events").read_text().split()
                pairs = dict(zip(events[::2], events[1::2], strict=False))
                return int(pairs.get("max", 0)) > 0 or int(pairs.get("oom_kill", 0)) > 0
            if int((self.dirs[0] / "memory.failcnt").read_text()) > 0:
                return True
            control = (self.dirs[0] / "memory.oom_control").read_text().split()
            pairs = dict(zip(control[::2], control[1::2], strict=False))
            return int(pairs.get("oom_kill", 0)) > 0  # kernel memory (inodes) counts here
        except (OSError, ValueError):
            return False

    def hit_task_limit(self) -> bool:
        """Whether a fork or thread was refused because the task cap was reached."""
        path = self.dirs[0 if self.layout == "v2" else 1] / "pids.events"
        try:
            return int(path.read_text().split()[1]) > 0
        except (OSError, ValueError, IndexError):
            return False

    def kill_all(self) -> None:
        """SIGKILL every task still in the group (e.g. a child that left the jail's session)."""
        for procs in self.procs_files():
            with contextlib.suppress(OSError):
                for pid in Path(procs).read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and delete the group (retrying while the last tasks exit)."""
        for _ in range(100):
            self.kill_all()
            busy = False
            for d in self.dirs:
                try:
                    if d.exists():
                        d.rmdir()
                except OSError:
                    busy = True
            if not busy:
                return
            time.sleep(0.02)
