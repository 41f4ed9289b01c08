"""Train and evaluate NetLLM adapters against the baselines, on the same splits.

VP: windows of the training users (`split_users`, seed kept in the adapter's config) train the
adapter with an L1 loss on wrapped angle changes; evaluation scores every test window.
ABR: the baselines (BBA, rate-based, robust MPC) stream every training trace; their decisions
with returns-to-go form the experience pool, on which the adapter learns to predict the action
from (return-to-go, state) sequences. At test time it is asked for a high return (the 90th
percentile of the pool's initial returns) and updates the return-to-go with each chunk's QoE.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llm_eff.netllm.abr import (
    Observation,
    Trace,
    baseline,
    mean_qoe,
    run_session,
)
from llm_eff.netllm.adapter import CONFIG_FILE, RETURN_SCALE, NetLLM, abr_features
from llm_eff.netllm.viewport import (
    last_value,
    linear_regression,
    lstm_baseline,
    mae_by_step,
    normalise,
    split_users,
    velocity,
    windows,
    wrap,
)

Progress = Callable[[int, int], None] | None


@dataclass
class Trajectory:
    """One baseline session: features (T, F), actions (T,), rewards (T,)."""

    features: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray


def collect_experience(
    traces: list[Trace], video: np.ndarray, policies: tuple[str, ...] = ("bba", "rate", "mpc")
) -> list[Trajectory]:
    """The baselines' sessions on `traces` (the ABR experience pool)."""
    from llm_eff.netllm.abr import Session

    pool = []
    for name in policies:
        for trace in traces:
            policy = baseline(name, video)
            session = Session(trace, video)
            feats, acts, rews = [], [], []
            while not session.done:
                obs = session.observe()
                level = int(policy(obs))
                feats.append(abr_features(obs))
                acts.append(level)
                rews.append(session.step(level).qoe)
            pool.append(Trajectory(np.array(feats), np.array(acts), np.array(rews)))
    return pool


def _returns_to_go(rewards: np.ndarray) -> np.ndarray:
    return np.cumsum(rewards[::-1])[::-1].copy() / RETURN_SCALE


def optimise(
    model: NetLLM,
    steps: int,
    lr: float,
    batch_loss: Callable[[int], torch.Tensor],
    progress: Progress = None,
) -> list[float]:
    """AdamW over the adapter's trainable parameters, one `batch_loss(step)` per step."""
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        loss = batch_loss(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if progress:
            progress(step + 1, steps)
    model.eval()
    return losses


def train_abr(
    model: NetLLM,
    pool: list[Trajectory],
    steps: int,
    batch_size: int = 16,
    window: int = 6,
    lr: float = 3e-4,
    seed: int = 0,
    progress: Progress = None,
) -> list[float]:
    """Supervised decision-transformer training on the pool; returns the losses."""
    rng = random.Random(seed)

    def batch_loss(_: int) -> torch.Tensor:
        returns, states, actions, index = [], [], [], []
        for _ in range(batch_size):
            traj = rng.choice(pool)
            start = rng.randrange(0, len(traj.actions) - window + 1)
            rtg = _returns_to_go(traj.rewards)
            returns.append(rtg[start : start + window])
            states.append(traj.features[start : start + window])
            actions.append(traj.actions[start : start + window])
            index.append(np.arange(start, start + window))
        logits = model.abr_logits(
            torch.tensor(np.array(returns), dtype=torch.float32),
            torch.tensor(np.array(states), dtype=torch.float32),
            torch.tensor(np.array(actions), dtype=torch.long),
            torch.tensor(np.array(index), dtype=torch.long),
        )
        target = torch.tensor(np.array(actions), dtype=torch.long)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
        )

    return optimise(model, steps, lr, batch_loss, progress)


class LMPolicy:
    """The adapted LM as an ABR policy (keeps the session's recent tokens)."""

    def __init__(
        self,
        model: NetLLM,
        target_return: float,
        window: int = 6,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        self.model, self.target, self.window, self.bounds = model, target_return, window, bounds
        self.latencies: list[float] = []
        self.reset()

    def reset(self) -> None:
        """Start a new session."""
        self.returns: list[float] = [self.target]
        self.states: list[np.ndarray] = []
        self.actions: list[int] = []

    def record(self, qoe: float) -> None:
        """Lower the return-to-go by the last chunk's QoE (kept within `bounds`, the range
        training saw: after a heavy rebuffer the raw value would ask for an unseen return)."""
        value = self.returns[-1] - qoe / RETURN_SCALE
        if self.bounds is not None:
            value = min(max(value, self.bounds[0]), self.bounds[1])
        self.returns.append(value)

    def _context(self, obs: Observation) -> tuple[list[float], np.ndarray, list[int], np.ndarray]:
        """Add `obs` and return the decision's window: returns, states, actions, chunk indices."""
        self.states.append(abr_features(obs))
        w = min(self.window, len(self.states))
        actions = [*self.actions[-(w - 1) :], 0] if w > 1 else [0]
        index = np.arange(obs.chunk_index - w + 1, obs.chunk_index + 1)
        return self.returns[-w:], np.array(self.states[-w:]), actions, index

    def __call__(self, obs: Observation) -> int:
        """The bitrate level for the next chunk."""
        return decide([self], [obs])[0]


def decide(policies: list[LMPolicy], observations: list[Observation]) -> list[int]:
    """One batched forward pass choosing the next level for several sessions at once.

    The sessions must be at the same chunk (as in lockstep evaluation), so their windows have
    equal length; each policy records the per-decision latency (batch time / batch size).
    """
    started = time.perf_counter()
    contexts = [p._context(o) for p, o in zip(policies, observations, strict=True)]
    model = policies[0].model
    with torch.no_grad():
        logits = model.abr_logits(
            torch.tensor([c[0] for c in contexts], dtype=torch.float32),
            torch.tensor(np.array([c[1] for c in contexts]), dtype=torch.float32),
            torch.tensor([c[2] for c in contexts], dtype=torch.long),
            torch.tensor(np.array([c[3] for c in contexts]), dtype=torch.long),
        )
    levels = [int(level) for level in logits[:, -1].argmax(dim=-1)]
    per_decision = (time.perf_counter() - started) / len(policies)
    for policy, level in zip(policies, levels, strict=True):
        policy.actions.append(level)
        policy.latencies.append(per_decision)
    return levels


def lm_sessions_qoe(
    model: NetLLM,
    target: float,
    traces: list[Trace],
    video: np.ndarray,
    batch_size: int = 64,
    progress: Progress = None,
    bounds: tuple[float, float] | None = None,
) -> tuple[list[float], list[float], float, list[int]]:
    """Mean QoE per trace of the LM policy, sessions streamed in lockstep batches.

    Returns (QoE per trace, per-decision latency with batching, latency of a lone decision,
    how often each bitrate level was chosen).
    """
    from llm_eff.netllm.abr import Session

    qoe: list[float] = []
    latencies: list[float] = []
    chosen: list[int] = []
    for first in range(0, len(traces), batch_size):
        group = traces[first : first + batch_size]
        policies = [LMPolicy(model, target, bounds=bounds) for _ in group]
        sessions = [Session(trace, video) for trace in group]
        per_chunk: list[list[float]] = [[] for _ in group]
        while not sessions[0].done:
            levels = decide(policies, [s.observe() for s in sessions])
            for i, (session, level) in enumerate(zip(sessions, levels, strict=True)):
                result = session.step(level)
                policies[i].record(result.qoe)
                per_chunk[i].append(result.qoe)
        qoe += [float(np.mean(q)) for q in per_chunk]
        latencies += [x for p in policies for x in p.latencies]
        chosen += [a for p in policies for a in p.actions]
        if progress:
            progress(len(qoe), len(traces))
    lone = LMPolicy(model, target, bounds=bounds)
    lm_session_qoe(lone, traces[0], video)
    counts = np.bincount(chosen, minlength=6).tolist()
    return qoe, latencies, float(np.median(lone.latencies)), counts


def lm_session_qoe(policy: LMPolicy, trace: Trace, video: np.ndarray) -> float:
    """Mean QoE of one session driven by the LM policy."""
    from llm_eff.netllm.abr import Session

    policy.reset()
    session = Session(trace, video)
    qoes = []
    while not session.done:
        result = session.step(policy(session.observe()))
        policy.record(result.qoe)
        qoes.append(result.qoe)
    return float(np.mean(qoes))


def return_range(pool: list[Trajectory]) -> tuple[float, float]:
    """The smallest and largest return-to-go in the pool (what the adapter was trained on)."""
    values = np.concatenate([_returns_to_go(t.rewards) for t in pool])
    return float(values.min()), float(values.max())


def target_return(pool: list[Trajectory]) -> float:
    """The 90th percentile of the pool's initial returns-to-go."""
    return float(np.percentile([_returns_to_go(t.rewards)[0] for t in pool], 90))


def evaluate_abr(
    model: NetLLM,
    target: float,
    traces: list[Trace],
    video: np.ndarray,
    progress: Progress = None,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Mean QoE per method on `traces` (per trace too) and the LM's decision latency.

    The LM streams all sessions in lockstep batches (one forward pass per chunk for up to 64
    sessions); `latency_ms` is a lone decision's latency, `batched_latency_ms` the per-decision
    cost within a batch.
    """
    per_trace: dict[str, list[float]] = {"netllm": [], "bba": [], "rate": [], "mpc": []}
    per_trace["netllm"], batched, lone, levels = lm_sessions_qoe(
        model, target, traces, video, bounds=bounds
    )
    for i, trace in enumerate(traces):
        for name in ("bba", "rate", "mpc"):
            per_trace[name].append(mean_qoe(run_session(trace, video, baseline(name, video))))
        if progress:
            progress(i + 1, len(traces))
    return {
        "qoe": {k: float(np.mean(v)) for k, v in per_trace.items()},
        "per_trace": per_trace,
        "traces": [t.name for t in traces],
        "latency_ms": 1000 * lone,
        "batched_latency_ms": 1000 * float(np.median(batched)),
        "netllm_levels": levels,  # how often the adapter picked each bitrate level
    }


def train_vp(
    model: NetLLM,
    past: np.ndarray,
    future: np.ndarray,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
    progress: Progress = None,
) -> list[float]:
    """L1 training on wrapped angle changes; returns the losses."""
    rng = np.random.default_rng(seed)
    x, last = normalise(past)
    y = (wrap(future - last) / 90.0).astype(np.float32)

    def batch_loss(_: int) -> torch.Tensor:
        idx = rng.integers(0, len(x), batch_size)
        pred = model.predict_vp(torch.from_numpy(x[idx]))
        return (pred - torch.from_numpy(y[idx])).abs().mean()

    return optimise(model, steps, lr, batch_loss, progress)


def predict_vp(model: NetLLM, past: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, float]:
    """(predicted angles, ms per window) for `past` windows."""
    x, last = normalise(past)
    out = []
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model.predict_vp(torch.from_numpy(x[i : i + batch_size])).numpy())
    ms = 1000 * (time.perf_counter() - started) / max(1, len(x))
    return wrap(last + np.concatenate(out) * 90.0), ms


def evaluate_vp(
    model: NetLLM,
    train_windows: tuple[np.ndarray, np.ndarray],
    test_windows: tuple[np.ndarray, np.ndarray],
    lstm_epochs: int = 5,
) -> dict[str, Any]:
    """MAE per horizon step for the adapter and the baselines on the test windows."""
    past, future = test_windows
    horizon = future.shape[1]
    predicted, ms = predict_vp(model, past)
    lstm = lstm_baseline(*train_windows, epochs=lstm_epochs)
    methods = {
        "netllm": predicted,
        "last value": last_value(past, horizon),
        "velocity": velocity(past, horizon),
        "linear regression": linear_regression(past, horizon),
        "lstm": lstm(past, horizon),
    }
    mae = {name: mae_by_step(pred, future).tolist() for name, pred in methods.items()}
    return {
        "mae_by_step": mae,
        "mae": {k: float(np.mean(v)) for k, v in mae.items()},
        "latency_ms_per_window": ms,
        "windows": len(past),
    }


def vp_split(
    data_dir: str | Path, history: int, horizon: int, seed: int, stride: int = 5
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(train windows, test windows), split by user."""
    from llm_eff.netllm.viewport import load_head_traces

    train, test = split_users(load_head_traces(data_dir), seed=seed)
    return windows(train, history, horizon, stride), windows(test, history, horizon, stride)


def write_config_extra(out: str | Path, **extra: Any) -> None:
    """Add fields (split seed, target return, data paths) to a saved adapter's config."""
    path = Path(out) / CONFIG_FILE
    config = json.loads(path.read_text())
    config.update(extra)
    path.write_text(json.dumps(config, indent=2) + "\n")
