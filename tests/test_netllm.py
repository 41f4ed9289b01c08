"""NetLLM tasks: the ABR simulator's invariants and hand-computed QoE, the baselines, viewport
windows, wrapped errors and the user split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llm_eff.core.errors import UserError
from llm_eff.netllm.abr import (
    BITRATES_KBPS,
    RTT_S,
    Session,
    Trace,
    baseline,
    load_trace,
    load_traces,
    load_video,
    mean_qoe,
    run_session,
)
from llm_eff.netllm.viewport import (
    HeadTrace,
    last_value,
    linear_regression,
    load_head_trace,
    mae_by_step,
    split_users,
    velocity,
    windows,
    wrap,
)
from tests.conftest import DATA

NETLLM = DATA / "netllm"


def _flat_trace(mbps: float, seconds: int = 100) -> Trace:
    times = tuple(float(t) for t in range(seconds))
    return Trace("flat", times, tuple(mbps for _ in times))


def test_constant_bitrate_qoe_by_hand() -> None:
    # 2 chunks of 1,000,000 bytes at the lowest level, a flat 8 Mbps link with 95% payload:
    # each download takes 1e6 * 8 / (8e6 * 0.95) s + RTT
    video = np.full((6, 2), 1_000_000.0)
    results = run_session(_flat_trace(8.0), video, lambda obs: 0)
    download = 1e6 * 8 / (8e6 * 0.95) + RTT_S
    assert results[0].download_s == pytest.approx(download)
    assert results[0].rebuffer_s == pytest.approx(download)  # empty buffer at start
    assert results[1].rebuffer_s == 0.0  # 4 s of buffer covers the second download
    assert results[1].buffer_s == pytest.approx(4.0 - download + 4.0)
    bitrate = BITRATES_KBPS[0] / 1000
    assert results[0].qoe == pytest.approx(bitrate - 4.3 * download)
    assert results[1].qoe == pytest.approx(bitrate)
    assert mean_qoe(results) == pytest.approx((2 * bitrate - 4.3 * download) / 2)


def test_switching_costs_smoothness_and_slow_links_rebuffer() -> None:
    video = np.full((6, 3), 500_000.0)
    levels = iter([0, 5, 5])
    results = run_session(_flat_trace(50.0), video, lambda obs: next(levels))
    jump = (BITRATES_KBPS[5] - BITRATES_KBPS[0]) / 1000
    assert results[1].qoe == pytest.approx(BITRATES_KBPS[5] / 1000 - jump)
    slow = run_session(_flat_trace(0.1), np.full((6, 3), 500_000.0), lambda obs: 5)
    assert all(r.download_s > 4.0 for r in slow)
    assert all(r.rebuffer_s > 0 for r in slow[1:])  # each download outlasts the buffer


def test_buffer_is_never_negative_and_capped_on_real_traces() -> None:
    video = load_video(NETLLM / "abr_video_sizes" / "video1_sizes")
    traces = load_traces(NETLLM / "abr_traces_fcc" / "test" / "fcc-test")[:10]
    rng = np.random.default_rng(0)
    for trace in traces:
        session = Session(trace, video)
        while not session.done:
            before = session.buffer_s
            result = session.step(int(rng.integers(0, 6)))
            assert result.buffer_s >= 0 and result.buffer_s <= 60.0 + 1e-9
            assert result.rebuffer_s == pytest.approx(max(0.0, result.download_s - before))


def test_baselines_on_test_traces_rank_as_expected() -> None:
    video = load_video(NETLLM / "abr_video_sizes" / "video1_sizes")
    traces = load_traces(NETLLM / "abr_traces_fcc" / "test" / "fcc-test")[:20]
    qoe = {
        name: np.mean([mean_qoe(run_session(t, video, baseline(name, video))) for t in traces])
        for name in ("bba", "rate", "mpc")
    }
    assert qoe["mpc"] > qoe["bba"]
    assert all(np.isfinite(v) for v in qoe.values())


def test_bad_trace_lines_and_unknown_names(tmp_path: Path) -> None:
    bad = tmp_path / "t.log"
    bad.write_text("0.0 1.5\n1.0 fast\n")
    with pytest.raises(UserError, match=r"t.log:2"):
        load_trace(bad)
    with pytest.raises(UserError, match="unknown ABR baseline"):
        baseline("pensieve", np.zeros((6, 2)))
    csv = tmp_path / "simple_5Hz_user3.csv"
    csv.write_text("0.0,1,2,3\n0.2,1,2\n")
    with pytest.raises(UserError, match="expected 4 columns"):
        load_head_trace(csv)


def test_angle_errors_wrap_around() -> None:
    assert wrap(np.array([350.0, -350.0, 180.0]))[:2].tolist() == [-10.0, 10.0]
    predicted = np.array([[[0.0, 0.0, 179.0]]])
    future = np.array([[[0.0, 0.0, -179.0]]])
    assert mae_by_step(predicted, future)[0] == pytest.approx(2.0 / 3)


def test_viewport_baselines_extrapolate_across_the_seam() -> None:
    # yaw turning +10 deg per sample through +180 -> -180
    yaw = wrap(np.arange(10, dtype=np.float32) * 10 + 100)
    past = np.stack([np.zeros(10), np.zeros(10), yaw], axis=-1)[None].astype(np.float32)
    future_yaw = wrap(np.arange(10, 15, dtype=np.float32) * 10 + 100)
    for predict in (velocity, linear_regression):
        assert np.allclose(wrap(predict(past, 5)[0, :, 2] - future_yaw), 0, atol=1e-3)
    assert np.allclose(last_value(past, 5)[0, :, 2], yaw[-1])


def test_user_split_leaks_nothing() -> None:
    traces = [
        HeadTrace(f"video{v}", str(u), np.zeros((20, 3))) for v in range(3) for u in range(12)
    ]
    train, test = split_users(traces, 0.25, seed=1)
    assert {t.user for t in train}.isdisjoint({t.user for t in test})
    assert len({t.user for t in test}) == 3 and len(train) + len(test) == len(traces)
    past, future = windows(test, history=10, horizon=5, stride=5)
    assert past.shape[1:] == (10, 3) and future.shape[1:] == (5, 3)


def test_adapter_heads_always_give_valid_answers_and_reload_exactly(tmp_path: Path) -> None:
    import torch

    from llm_eff.models.tiny import tiny_llama
    from llm_eff.netllm.adapter import STATE_FEATURES, NetLLM, load_netllm
    from llm_eff.netllm.train import LMPolicy, lm_session_qoe, predict_vp

    torch.manual_seed(0)
    abr = NetLLM(tiny_llama()[0], "abr")
    logits = abr.abr_logits(
        torch.randn(2, 4),
        torch.randn(2, 4, STATE_FEATURES),
        torch.randint(0, 6, (2, 4)),
        torch.arange(4).repeat(2, 1),
    )
    assert logits.shape == (2, 4, 6)
    video = load_video(NETLLM / "abr_video_sizes" / "video1_sizes")
    trace = load_traces(NETLLM / "abr_traces_fcc" / "test" / "fcc-test")[0]
    policy = LMPolicy(abr, target_return=1.0)
    assert np.isfinite(lm_session_qoe(policy, trace, video))
    assert set(policy.actions) <= set(range(6)) and len(policy.actions) == video.shape[1]
    vp = NetLLM(tiny_llama()[0], "vp", horizon=3, history=6)
    past = np.random.default_rng(0).uniform(-180, 180, (7, 6, 3)).astype(np.float32)
    angles, _ = predict_vp(vp, past)
    assert angles.shape == (7, 3, 3) and np.all(np.abs(angles) <= 180)
    assert np.allclose(angles, last_value(past, 3))  # zero-initialised head: last value
    with torch.no_grad():
        vp.head.weight.normal_()
    vp.save(tmp_path / "vp", "tiny-llama")
    reloaded, config = load_netllm(tmp_path / "vp")
    assert config["task"] == "vp" and config["horizon"] == 3
    assert np.array_equal(predict_vp(reloaded, past)[0], predict_vp(vp, past)[0])
    with pytest.raises(UserError, match="unknown NetLLM task"):
        NetLLM(tiny_llama()[0], "congestion")


@pytest.mark.slow  # 40 s of CLI training; the adapter heads are tested in-process above
def test_netllm_cli_trains_and_evaluates_into_the_run_log(tmp_path: Path) -> None:
    import shutil

    from llm_eff.core.runlog import RunLog
    from tests.conftest import cli

    train = tmp_path / "train"
    train.mkdir()
    for f in sorted((NETLLM / "abr_traces_fcc" / "train" / "fcc-train").iterdir())[:3]:
        shutil.copy(f, train / f.name)
    video = NETLLM / "abr_video_sizes" / "video1_sizes"
    train_args = ["netllm", "abr", "train", "--traces", str(train), "--video", str(video)]
    train_args += ["--out", str(tmp_path / "abr"), "--model", "tiny-llama"]
    result = cli(*train_args, "--steps", "3")
    assert result.returncode == 0, result.stderr
    again = cli(*train_args)
    assert again.returncode == 2 and "output directory exists" in again.stderr
    run = tmp_path / "abr.jsonl"
    result = cli(
        "netllm",
        "abr",
        "eval",
        "--adapter",
        str(tmp_path / "abr"),
        "--traces",
        str(NETLLM / "abr_traces_fcc" / "test" / "fcc-test"),
        "--video",
        str(video),
        "--run",
        str(run),
        "--limit",
        "2",
    )
    assert result.returncode == 0, result.stderr
    attempts = RunLog(run).read()
    assert len(attempts) == 8 and {a.benchmark for a in attempts} == {"netllm-abr"}
    assert all(a.passed for a in attempts if a.system == "mpc")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "t.log").write_text("0 1\nnot a line\n")
    result = cli(
        "netllm",
        "abr",
        "train",
        "--traces",
        str(bad),
        "--video",
        str(video),
        "--out",
        str(tmp_path / "x"),
        "--model",
        "tiny-llama",
    )
    assert result.returncode == 2 and "t.log:2" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()


def test_lockstep_batched_sessions_match_one_session_at_a_time() -> None:
    import torch

    from llm_eff.models.tiny import tiny_llama
    from llm_eff.netllm.adapter import NetLLM
    from llm_eff.netllm.train import LMPolicy, lm_session_qoe, lm_sessions_qoe

    torch.manual_seed(1)
    abr = NetLLM(tiny_llama()[0], "abr")
    with torch.no_grad():
        abr.head.weight.normal_(std=2.0)
    video = load_video(NETLLM / "abr_video_sizes" / "video1_sizes")
    traces = load_traces(NETLLM / "abr_traces_fcc" / "test" / "fcc-test")[:3]
    batched, latencies, lone, levels = lm_sessions_qoe(abr, 1.0, traces, video, batch_size=2)
    alone = [lm_session_qoe(LMPolicy(abr, 1.0), trace, video) for trace in traces]
    assert np.allclose(batched, alone)
    assert len(latencies) == 3 * video.shape[1] == sum(levels) and lone > 0


def test_return_to_go_stays_within_what_training_saw() -> None:
    from llm_eff.models.tiny import tiny_llama
    from llm_eff.netllm.adapter import NetLLM
    from llm_eff.netllm.train import LMPolicy, Trajectory, return_range

    pool = [Trajectory(np.zeros((3, 1)), np.zeros(3, int), np.array([10.0, 5.0, -5.0]))]
    low, high = return_range(pool)
    assert (low, high) == pytest.approx((-0.1, 0.2))  # returns-to-go 10, 0, -5 over 50
    policy = LMPolicy(NetLLM(tiny_llama()[0], "abr"), 0.2, bounds=(low, high))
    policy.record(-30.0)  # a heavy rebuffer would push the return-to-go to 0.8
    policy.record(50.0)  # a windfall would push it below anything seen
    assert policy.returns == pytest.approx([0.2, 0.2, -0.1])
