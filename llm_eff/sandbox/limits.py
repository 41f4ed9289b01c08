"""Resource limits for one sandboxed run.

Memory and the task count are caps on the program and all its children together where the
machine gives the run a cgroup (`cgroups.py`), and per process (rlimits) everywhere. The work
dir, `/tmp` and `/dev/shm` are private tmpfs mounts capped at `disk_mb` each; their pages and
inodes are charged to the run's memory cgroup too, so a flood of files ends at `memory_mb`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Limits:
    """Wall/CPU time, memory, disk, file size, process count and open files for one run."""

    wall_s: float = 30.0
    cpu_s: int = 20
    memory_mb: int = 4096
    disk_mb: int = 256
    file_mb: int = 64
    nproc: int = 128
    nofile: int = 256
    output_kb: int = 256

    @classmethod
    def within(cls, seconds: float) -> Limits:
        """Default limits with `seconds` of wall time and as many whole seconds of CPU (>= 1)."""
        return cls(wall_s=seconds, cpu_s=max(1, int(seconds)))

    def to_dict(self) -> dict:
        """JSON-ready form (passed to the jail process)."""
        return asdict(self)
