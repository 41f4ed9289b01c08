"""The EfficientLLM axes a local backend measures beside tokens and time.

    memory utilization   peak memory over the device's capacity: CUDA memory of the GPU, or on
                         CPU the machine's RAM (the cgroup's memory limit where it is lower)
    compute utilization  achieved FLOP/s (2 x weights x tokens processed, over the batch's wall
                         time) over the device's peak FLOP/s, the peak measured once per process
                         by a short matmul probe in the model's compute dtype
    energy               joules the device drew during the generation: NVML's energy counter on
                         NVIDIA GPUs (pynvml, from nvidia-ml-py), RAPL's powercap counters on
                         CPU where the kernel lets this user read them; None where neither is
                         readable, never an estimate. Both count the whole device (package), so
                         other work on the machine is included: compare runs side by side.

Compression rate comes with the weights (`llm_eff.models.quant.compression_rate`).
"""

from __future__ import annotations

import functools
import os
import re
import time
from pathlib import Path
from typing import Any

RAPL_ROOT = Path("/sys/class/powercap")
_PACKAGE = re.compile(r"^intel-rapl:\d+$")  # top-level package domains (AMD uses it too)


def memory_capacity_bytes(device: str) -> int | None:
    """Bytes of memory the device offers this process (None when unknown)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    except OSError:
        pass
    limit = _cgroup_memory_limit()
    if limit is not None and (total is None or limit < total):
        return limit
    return total


def _cgroup_memory_limit() -> int | None:
    """This process's cgroup memory limit in bytes (v2 or v1), None when unlimited."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def utilization(used: float | None, capacity: float | None) -> float | None:
    """`used` over `capacity` (None when either is unknown or the capacity is zero)."""
    if used is None or not capacity:
        return None
    return float(used) / float(capacity)


@functools.lru_cache(maxsize=8)
def peak_flops(device: str, dtype: str = "float32") -> float:
    """The device's FLOP/s on a square matmul in `dtype`, the best of a few timed runs (cached
    per process: the probe takes well under a second on CPU)."""
    import torch

    kind = getattr(torch, dtype)
    size = 4096 if device.startswith("cuda") else 1024
    a = torch.randn(size, size, device=device).to(kind)
    b = torch.randn(size, size, device=device).to(kind)
    best = float("inf")
    with torch.no_grad():
        for i in range(6):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            torch.mm(a, b)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:  # the first run warms up (allocation, kernel selection)
                best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


class EnergyMeter:
    """Joules the device drew between `__enter__` and `__exit__` (`joules` None when no counter
    is readable); `source` says which counter ('nvml', 'rapl' or '')."""

    def __init__(self, device: str, rapl_root: Path = RAPL_ROOT) -> None:
        self.device = device
        self.rapl_root = rapl_root
        self.joules: float | None = None
        self.source = ""
        self._start: Any = None

    def __enter__(self) -> EnergyMeter:
        self._start = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._read()
        if self._start is None or end is None:
            return
        if self.source == "nvml":
            self.joules = (end - self._start) / 1000.0  # millijoules
            return
        total = 0
        for domain, (value, wrap) in end.items():
            before = self._start.get(domain)
            if before is None:
                return
            delta = value - before[0]
            total += delta if delta >= 0 else delta + wrap  # the counter wrapped once
        self.joules = total / 1e6  # microjoules

    def _read(self) -> Any:
        if self.device.startswith("cuda"):
            value = _nvml_millijoules(self.device)
            self.source = "nvml" if value is not None else ""
            return value
        value = rapl_microjoules(self.rapl_root)
        self.source = "rapl" if value else ""
        return value or None


def rapl_microjoules(root: Path = RAPL_ROOT) -> dict[str, tuple[int, int]]:
    """{package domain: (energy counter in µJ, its wraparound range)}; {} where unreadable."""
    out: dict[str, tuple[int, int]] = {}
    try:
        domains = sorted(p for p in root.iterdir() if _PACKAGE.match(p.name))
    except OSError:
        return {}
    for domain in domains:
        try:
            value = int((domain / "energy_uj").read_text())
            wrap = int((domain / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            return {}  # one unreadable package makes the sum wrong: report nothing
        out[domain.name] = (value, wrap)
    return out


def _nvml_millijoules(device: str) -> int | None:
    """NVML's total energy counter of the GPU behind `device`, in mJ (None if unavailable)."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        ids = [v for v in visible.split(",") if v.strip().isdigit()]
        physical = int(ids[index]) if index < len(ids) else index
        handle = pynvml.nvmlDeviceGetHandleByIndex(physical)
        return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except Exception:  # noqa: BLE001 - no pynvml, no driver, or a GPU without the counter
        return None


def compute_utilization(flops: float, seconds: float, device: str, dtype: str) -> float | None:
    """Achieved FLOP/s (`flops` in `seconds`) over the device's measured peak in `dtype`."""
    if seconds <= 0 or flops <= 0:
        return None
    return flops / seconds / peak_flops(device, dtype)


def shares(total: float | None, weights: list[float]) -> list[float | None]:
    """`total` split in proportion to `weights` (e.g. a batch's joules over its answers' tokens);
    all None when the total was not measured."""
    whole = sum(weights)
    if total is None or whole <= 0:
        return [None] * len(weights)
    return [total * w / whole for w in weights]
