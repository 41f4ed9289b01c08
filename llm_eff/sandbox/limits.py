"""Resource limits for one sandboxed run."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Limits:
    """Wall/CPU time, address space, file size, process count and open files for one run."""

    wall_s: float = 30.0
    cpu_s: int = 20
    memory_mb: int = 4096
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
