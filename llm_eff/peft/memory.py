"""Peak training memory: CUDA allocator peak on GPU, sampled resident set size on CPU."""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path
from types import TracebackType

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size now."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


class PeakMemory:
    """Context manager: `.peak_bytes` is the peak memory used inside it above what was in use
    on entry (GPU: `torch.cuda.max_memory_allocated`; CPU: RSS sampled every `interval` s and
    the kernel's high-water mark when that rose)."""

    def __init__(self, device: str = "cpu", interval: float = 0.002) -> None:
        self.device, self.interval = device, interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._max = 0

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self._base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return self
        self._base = rss_bytes()
        self._hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._max = self._base
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, rss_bytes())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated() - self._base
            return
        self._stop.set()
        self._thread.join()
        peak = max(self._max, rss_bytes())
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if hwm > self._hwm:  # the kernel saw a higher peak than the sampler caught
            peak = max(peak, hwm)
        self.peak_bytes = max(0, peak - self._base)
