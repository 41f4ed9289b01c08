"""360-degree viewport prediction: head-movement traces, prediction windows, baselines, MAE.

Traces (Jin et al., 2022, as packaged by NetLLM): `videoN/5Hz/*_userK.csv`, lines
`time_s, roll, pitch, yaw` in degrees at 5 Hz. A window is `history` samples (default 10,
2 s) and the `horizon` samples that follow (default 5, 1 s); the task is to predict the
horizon's (roll, pitch, yaw). Errors are absolute angle differences wrapped to [0, 180] and
averaged per horizon step and overall. Train and test are split by user, so no user's
movements are seen in training and scored in testing.

Baselines: last value, velocity extrapolation (the last step's change continued), per-window
linear regression over the history, and a small LSTM trained on the training windows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm_eff.core.errors import UserError

_USER = re.compile(r"user(\d+)")


@dataclass(frozen=True)
class HeadTrace:
    """One user's head movement on one video: (n, 3) angles (roll, pitch, yaw)."""

    video: str
    user: str
    angles: np.ndarray


def load_head_trace(path: str | Path, video: str = "") -> HeadTrace:
    """A `time, roll, pitch, yaw` CSV; UserError naming a bad line."""
    path = Path(path)
    rows = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(x) for x in line.split(",")]
        except ValueError:
            raise UserError(f"{path}:{n}: expected 'time, roll, pitch, yaw' numbers") from None
        if len(values) != 4:
            raise UserError(f"{path}:{n}: expected 4 columns, got {len(values)}")
        rows.append(values[1:])
    if not rows:
        raise UserError(f"{path}: empty trace")
    match = _USER.search(path.stem)
    return HeadTrace(video, match.group(1) if match else path.stem, np.array(rows))


def load_head_traces(root: str | Path, rate: str = "5Hz") -> list[HeadTrace]:
    """Every user's trace of every video under `root` (videoN/<rate>/*.csv)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"viewport data folder not found: {root}")
    traces = [
        load_head_trace(f, video.name)
        for video in sorted(root.iterdir())
        if (video / rate).is_dir()
        for f in sorted((video / rate).glob("*.csv"))
    ]
    if not traces:
        raise UserError(f"{root}: no videoN/{rate}/*.csv traces")
    return traces


def split_users(
    traces: list[HeadTrace], test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[HeadTrace], list[HeadTrace]]:
    """(train, test) traces with whole users held out."""
    users = sorted({t.user for t in traces}, key=lambda u: (len(u), u))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(users, max(1, int(len(users) * test_fraction)), replace=False))
    return [t for t in traces if t.user not in held], [t for t in traces if t.user in held]


def windows(
    traces: list[HeadTrace], history: int = 10, horizon: int = 5, stride: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """(past, future) arrays of shape (n, history, 3) and (n, horizon, 3)."""
    past, future = [], []
    for trace in traces:
        a = trace.angles
        for start in range(0, len(a) - history - horizon + 1, stride):
            past.append(a[start : start + history])
            future.append(a[start + history : start + history + horizon])
    if not past:
        raise UserError("no trace is long enough for one window")
    return np.array(past, dtype=np.float32), np.array(future, dtype=np.float32)


def wrap(delta: np.ndarray) -> np.ndarray:
    """Angle differences wrapped to [-180, 180)."""
    return (delta + 180.0) % 360.0 - 180.0


def mae_by_step(predicted: np.ndarray, future: np.ndarray) -> np.ndarray:
    """Mean absolute wrapped error per horizon step (degrees), averaged over angles."""
    return np.abs(wrap(predicted - future)).mean(axis=(0, 2))


def unwrap_history(past: np.ndarray) -> np.ndarray:
    """History angles made continuous (no jump at +-180) for extrapolation."""
    return past[:, :1] + np.cumsum(
        np.concatenate([np.zeros_like(past[:, :1]), wrap(np.diff(past, axis=1))], axis=1), axis=1
    )


def last_value(past: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat the last seen angles."""
    return np.repeat(past[:, -1:], horizon, axis=1)


def velocity(past: np.ndarray, horizon: int) -> np.ndarray:
    """Continue the last step's change."""
    cont = unwrap_history(past)
    step = cont[:, -1] - cont[:, -2]
    k = np.arange(1, horizon + 1, dtype=np.float32)[None, :, None]
    return wrap(cont[:, -1:] + step[:, None] * k)


def linear_regression(past: np.ndarray, horizon: int) -> np.ndarray:
    """A least-squares line through each window's history, extended."""
    cont = unwrap_history(past)
    h = past.shape[1]
    t = np.arange(h, dtype=np.float64)
    design = np.stack([t, np.ones(h)], axis=1)  # (h, 2)
    coef, *_ = np.linalg.lstsq(design, cont.transpose(1, 0, 2).reshape(h, -1), rcond=None)
    future_t = np.stack([np.arange(h, h + horizon), np.ones(horizon)], axis=1)
    pred = (future_t @ coef).reshape(horizon, past.shape[0], 3).transpose(1, 0, 2)
    return wrap(pred.astype(np.float32))


def normalise(past: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(history relative to its last sample, continuous, / 90 deg; the last sample)."""
    cont = unwrap_history(past)
    last = cont[:, -1:]
    return ((cont - last) / 90.0).astype(np.float32), last


def lstm_baseline(
    train_past: np.ndarray, train_future: np.ndarray, epochs: int = 20, seed: int = 0
):  # noqa: ANN201 - returns a predict(past, horizon) function
    """Train a small LSTM (64 units) on the training windows; returns its predictor."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    horizon = train_future.shape[1]
    x, last = normalise(train_past)
    y = (wrap(train_future - last) / 90.0).astype(np.float32)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(3, 64, batch_first=True)
            self.out = nn.Linear(64, horizon * 3)

        def forward(self, seq: torch.Tensor) -> torch.Tensor:
            h, _ = self.lstm(seq)
            return self.out(h[:, -1]).view(-1, horizon, 3)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        order = torch.randperm(len(xs))
        for i in range(0, len(xs), 256):
            idx = order[i : i + 256]
            loss = (net(xs[idx]) - ys[idx]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()

    def predict(past: np.ndarray, horizon_: int) -> np.ndarray:
        seq, last_ = normalise(past)
        with torch.no_grad():
            delta = net(torch.from_numpy(seq)).numpy() * 90.0
        return wrap(last_ + delta[:, :horizon_])

    return predict
