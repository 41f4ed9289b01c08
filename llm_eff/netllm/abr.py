"""Adaptive bitrate streaming: a chunk-level simulator in the Pensieve style and the classic
baseline policies.

Simulator: a video of 4-second chunks, each encoded at 6 bitrates (300-4300 kbps; chunk sizes
in bytes from `video_size_0..5`), downloaded over a throughput trace (lines `time_s Mbps`,
looping at its end). A download moves bytes at the trace's rate (95% payload) and adds one
link RTT (80 ms). While it downloads the buffer drains; if it runs dry the player rebuffers
(stall time = download time - buffer). Each chunk then adds 4 s of buffer; above 60 s the
player waits in 500 ms steps before the next request.

QoE of a chunk = bitrate (Mbps) - 4.3 x rebuffer (s) - |bitrate - previous bitrate| (Mbps)
(the first chunk has no smoothness term); a session's QoE is the mean over its chunks.

Baselines: buffer-based (BBA: reservoir 5 s, cushion 10 s), rate-based (the highest bitrate
below the harmonic mean of the last 5 throughputs), and robust MPC (maximise the QoE of the
next 5 chunks under the harmonic-mean throughput discounted by its recent worst error).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llm_eff.core.errors import UserError

BITRATES_KBPS = (300, 750, 1200, 1850, 2850, 4300)
CHUNK_S = 4.0
RTT_S = 0.08
PAYLOAD = 0.95
BUFFER_MAX_S = 60.0
DRAIN_STEP_S = 0.5
REBUF_PENALTY = 4.3
HISTORY = 8


@dataclass(frozen=True)
class Trace:
    """A throughput trace: times (s) and bandwidths (Mbps)."""

    name: str
    times: tuple[float, ...]
    mbps: tuple[float, ...]


def load_trace(path: str | Path) -> Trace:
    """A trace file (two numbers a line); UserError naming a bad line."""
    path = Path(path)
    times, rates = [], []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text trace file") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            t, r = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            raise UserError(
                f"{path}:{n}: expected 'time_s Mbps', got {line.strip()[:40]!r}"
            ) from None
        if r < 0 or (times and t < times[-1]):
            raise UserError(f"{path}:{n}: negative bandwidth or time going backwards")
        times.append(t)
        rates.append(r)
    if len(times) < 2:
        raise UserError(f"{path}: a trace needs at least two lines")
    return Trace(path.name, tuple(times), tuple(rates))


def load_traces(directory: str | Path) -> list[Trace]:
    """Every trace file in a folder (sorted by name; hidden files and pickles are skipped)."""
    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"trace folder not found: {root}")
    traces = [
        load_trace(p)
        for p in sorted(root.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix not in (".pkl", ".npy")
    ]
    if not traces:
        raise UserError(f"{root}: no trace files")
    return traces


def load_video(directory: str | Path) -> np.ndarray:
    """Chunk sizes in bytes, shape (levels, chunks), from `video_size_0..5`."""
    root = Path(directory)
    levels = []
    for level in range(len(BITRATES_KBPS)):
        path = root / f"video_size_{level}"
        if not path.is_file():
            raise UserError(f"{root}: missing {path.name}")
        try:
            levels.append([int(x) for x in path.read_text().split()])
        except ValueError:
            raise UserError(f"{path}: chunk sizes must be integers") from None
    n = min(len(x) for x in levels)
    return np.array([x[:n] for x in levels], dtype=np.float64)


@dataclass
class Observation:
    """What a policy sees before choosing the next chunk's bitrate."""

    buffer_s: float
    last_level: int
    throughputs_mbps: list[float]  # per downloaded chunk, oldest first (last HISTORY)
    download_s: list[float]
    next_sizes: np.ndarray  # bytes of the next chunk at each level
    chunks_left: int
    chunk_index: int


@dataclass
class ChunkResult:
    """One downloaded chunk."""

    level: int
    download_s: float
    rebuffer_s: float
    buffer_s: float
    qoe: float


@dataclass
class Session:
    """A streaming session over one trace (see the module docstring)."""

    trace: Trace
    video: np.ndarray
    start_level: int = 1
    chunk: int = 0
    buffer_s: float = 0.0
    last_level: int = -1
    _ptr: int = 1
    _time: float = 0.0
    throughputs: list[float] = field(default_factory=list)
    downloads: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._time = self.trace.times[0]

    @property
    def done(self) -> bool:
        """True when every chunk has been downloaded."""
        return self.chunk >= self.video.shape[1]

    def observe(self) -> Observation:
        """The state before the next decision."""
        return Observation(
            self.buffer_s,
            self.last_level if self.last_level >= 0 else self.start_level,
            self.throughputs[-HISTORY:],
            self.downloads[-HISTORY:],
            self.video[:, self.chunk] if not self.done else np.zeros(self.video.shape[0]),
            self.video.shape[1] - self.chunk,
            self.chunk,
        )

    def _advance(self) -> tuple[float, float]:
        """(seconds, Mbps) of the current trace segment, moving the pointer (looping)."""
        times, rates = self.trace.times, self.trace.mbps
        if self._ptr >= len(times):
            self._ptr = 1
            self._time = times[0]
        return times[self._ptr] - self._time, rates[self._ptr]

    def _download(self, size_bytes: float) -> float:
        delay, sent = 0.0, 0.0
        while True:
            span, mbps = self._advance()
            rate = mbps * 1e6 / 8 * PAYLOAD  # bytes per second
            if span <= 0:
                self._ptr += 1
                continue
            if sent + rate * span >= size_bytes:
                need = (size_bytes - sent) / rate if rate > 0 else span
                delay += need
                self._time += need
                return delay + RTT_S
            sent += rate * span
            delay += span
            self._time = self.trace.times[self._ptr]
            self._ptr += 1

    def _wait(self, seconds: float) -> None:
        while seconds > 1e-12:
            span, _ = self._advance()
            if span <= 0:
                self._ptr += 1
                continue
            step = min(span, seconds)
            self._time += step
            seconds -= step
            if step == span:
                self._ptr += 1

    def step(self, level: int) -> ChunkResult:
        """Download the next chunk at `level`; returns what happened and its QoE."""
        if not 0 <= level < self.video.shape[0]:
            raise ValueError(f"bitrate level {level} out of range")
        if self.done:
            raise ValueError("the video has ended")
        size = self.video[level, self.chunk]
        delay = self._download(size)
        rebuffer = max(0.0, delay - self.buffer_s)
        self.buffer_s = max(0.0, self.buffer_s - delay) + CHUNK_S
        if self.buffer_s > BUFFER_MAX_S:
            sleep = math.ceil((self.buffer_s - BUFFER_MAX_S) / DRAIN_STEP_S) * DRAIN_STEP_S
            self.buffer_s -= sleep
            self._wait(sleep)
        bitrate = BITRATES_KBPS[level] / 1000
        smooth = (
            0.0 if self.last_level < 0 else abs(bitrate - BITRATES_KBPS[self.last_level] / 1000)
        )
        qoe = bitrate - REBUF_PENALTY * rebuffer - smooth
        self.throughputs.append(size * 8 / 1e6 / max(delay, 1e-9))
        self.downloads.append(delay)
        self.last_level = level
        self.chunk += 1
        return ChunkResult(level, delay, rebuffer, self.buffer_s, qoe)


Policy = Callable[[Observation], int]


def run_session(trace: Trace, video: np.ndarray, policy: Policy) -> list[ChunkResult]:
    """Stream the whole video over `trace` with `policy`."""
    session = Session(trace, video)
    results = []
    while not session.done:
        results.append(session.step(int(policy(session.observe()))))
    return results


def mean_qoe(results: list[ChunkResult]) -> float:
    """Mean QoE per chunk of a session."""
    return sum(r.qoe for r in results) / len(results) if results else 0.0


def bba(obs: Observation, reservoir: float = 5.0, cushion: float = 10.0) -> int:
    """Buffer-based: lowest bitrate below the reservoir, highest above reservoir + cushion,
    linear in between."""
    top = len(BITRATES_KBPS) - 1
    if obs.buffer_s < reservoir:
        return 0
    if obs.buffer_s >= reservoir + cushion:
        return top
    return int((obs.buffer_s - reservoir) / cushion * top)


def _harmonic(values: list[float]) -> float:
    values = [v for v in values[-5:] if v > 0]
    return len(values) / sum(1 / v for v in values) if values else 0.0


def rate_based(obs: Observation) -> int:
    """The highest bitrate below the harmonic mean of the last 5 chunk throughputs."""
    estimate = _harmonic(obs.throughputs_mbps)
    if estimate <= 0:
        return 0
    fits = [i for i, b in enumerate(BITRATES_KBPS) if b / 1000 <= estimate]
    return fits[-1] if fits else 0


class RobustMPC:
    """Robust MPC over a 5-chunk horizon (all 6^5 bitrate plans scored at once with numpy)."""

    def __init__(self, video: np.ndarray, horizon: int = 5) -> None:
        self.video = video
        self.horizon = horizon
        levels = range(len(BITRATES_KBPS))
        self.plans = {
            steps: np.array(list(itertools.product(levels, repeat=steps)))
            for steps in range(1, horizon + 1)
        }
        self.errors: list[float] = []
        self._last_prediction: float | None = None

    def __call__(self, obs: Observation) -> int:
        """The first bitrate of the best plan."""
        if obs.throughputs_mbps and self._last_prediction:
            actual = obs.throughputs_mbps[-1]
            self.errors.append(abs(self._last_prediction - actual) / max(actual, 1e-9))
        if obs.chunk_index == 0:
            self.errors = []
        estimate = _harmonic(obs.throughputs_mbps)
        self._last_prediction = estimate or None
        if estimate <= 0:
            return 0
        robust = estimate / (1 + max(self.errors[-5:], default=0.0))
        steps = min(self.horizon, obs.chunks_left)
        plans = self.plans[steps]
        start = obs.chunk_index
        sizes = self.video[plans, np.arange(start, start + steps)[None, :]]  # (P, steps)
        download = sizes * 8 / 1e6 / robust
        bitrates = np.array(BITRATES_KBPS)[plans] / 1000
        buffer = np.full(len(plans), obs.buffer_s)
        rebuffer = np.zeros(len(plans))
        for k in range(steps):
            rebuffer += np.maximum(download[:, k] - buffer, 0)
            buffer = np.maximum(buffer - download[:, k], 0) + CHUNK_S
        previous = np.concatenate(
            [np.full((len(plans), 1), BITRATES_KBPS[obs.last_level] / 1000), bitrates[:, :-1]], 1
        )
        qoe = bitrates.sum(1) - REBUF_PENALTY * rebuffer - np.abs(bitrates - previous).sum(1)
        return int(plans[int(np.argmax(qoe)), 0])


def baseline(name: str, video: np.ndarray) -> Policy:
    """A baseline policy by name: bba, rate, mpc."""
    if name == "bba":
        return bba
    if name == "rate":
        return rate_based
    if name == "mpc":
        return RobustMPC(video)
    raise UserError(f"unknown ABR baseline '{name}': use bba, rate or mpc")
