"""NetLLM on both tasks: the adapted language model against the classic baselines.

    .venv/bin/python benchmarks/netllm.py [--model smollm2-135m] [--abr-steps 300]
        [--vp-steps 300] [--train-traces 60] [--test-traces 100] [--data ../shared/data/netllm]
        [--tasks abr,vp]

ABR: experience from BBA, rate-based and robust MPC on `--train-traces` FCC training traces;
the adapter trains on it and streams the FCC test traces; prints mean QoE per chunk for every
method and each method's decision latency. VP: the adapter trains on the training users'
windows (2 s history, 1 s horizon at 5 Hz) and predicts every window of the held-out users;
prints MAE per horizon step and latency per window. One run, one machine, side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Train, evaluate and print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--abr-steps", type=int, default=300)
    parser.add_argument("--vp-steps", type=int, default=300)
    parser.add_argument("--train-traces", type=int, default=60)
    parser.add_argument("--test-traces", type=int, default=100)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "netllm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="abr,vp", help="abr, vp or both (comma-separated)")
    args = parser.parse_args()
    tasks = {t.strip() for t in args.tasks.split(",") if t.strip()}

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.models import parse_model
    from llm_eff.netllm.abr import baseline, load_traces, load_video, run_session
    from llm_eff.netllm.adapter import NetLLM
    from llm_eff.netllm.train import (
        _returns_to_go as _rtg,
    )
    from llm_eff.netllm.train import (
        collect_experience,
        evaluate_abr,
        evaluate_vp,
        lm_sessions_qoe,
        return_range,
        target_return,
        train_abr,
        train_vp,
        vp_split,
    )

    console = Console(width=160)
    torch.manual_seed(args.seed)
    video = load_video(args.data / "abr_video_sizes" / "video1_sizes")
    train = load_traces(args.data / "abr_traces_fcc" / "train" / "fcc-train")[: args.train_traces]
    test = load_traces(args.data / "abr_traces_fcc" / "test" / "fcc-test")[: args.test_traces]
    if "abr" in tasks:
        started = time.perf_counter()
        pool = collect_experience(train, video)
        console.print(
            f"ABR experience: {len(pool)} sessions in {time.perf_counter() - started:.0f} s"
        )
        net = NetLLM(load_local(parse_model(args.model))[0], "abr")
        started = time.perf_counter()
        losses = train_abr(net, pool, args.abr_steps, seed=args.seed)
        console.print(
            f"ABR training: {args.abr_steps} steps in {time.perf_counter() - started:.0f} s, "
            f"loss {losses[0]:.3f} -> {np.mean(losses[-20:]):.3f}"
        )
        abr = evaluate_abr(net, target_return(pool), test, video, bounds=return_range(pool))
        console.print(f"adapter's bitrate levels over all test decisions: {abr['netllm_levels']}")
        median = float(np.median([r[0] for r in (_rtg(t.rewards) for t in pool)]))
        low_qoe, _, _, low_levels = lm_sessions_qoe(
            net, median, test, video, bounds=return_range(pool)
        )
        abr["per_trace"]["netllm (median target)"] = low_qoe
        abr["qoe"]["netllm (median target)"] = float(np.mean(low_qoe))
        console.print(f"levels with the median target return: {low_levels}")
        latency = {"netllm": abr["latency_ms"], "netllm (median target)": abr["latency_ms"]}
        for name in ("bba", "rate", "mpc"):
            policy = baseline(name, video)
            t0 = time.perf_counter()
            decisions = sum(len(run_session(t, video, policy)) for t in test[:10])
            latency[name] = 1000 * (time.perf_counter() - t0) / decisions
        table = Table("ABR method", "mean QoE / chunk", "vs MPC", "traces >= MPC", "ms / decision")
        mpc = np.array(abr["per_trace"]["mpc"])
        for name, qoe in abr["qoe"].items():
            wins = np.mean(np.array(abr["per_trace"][name]) >= mpc)
            gain = (qoe - abr["qoe"]["mpc"]) / abs(abr["qoe"]["mpc"])
            table.add_row(name, f"{qoe:.3f}", f"{gain:+.1%}", f"{wins:.0%}", f"{latency[name]:.2f}")
        console.print(
            f"{len(test)} FCC test traces, backbone {args.model}; adapter latency "
            f"{abr['latency_ms']:.1f} ms per lone decision, {abr['batched_latency_ms']:.2f} ms per "
            "decision when sessions are batched"
        )
        console.print(table)

    if "vp" in tasks:
        train_w, test_w = vp_split(args.data / "viewport_jin2022", 10, 5, args.seed)
        vp_net = NetLLM(load_local(parse_model(args.model))[0], "vp", horizon=5, history=10)
        started = time.perf_counter()
        vp_losses = train_vp(vp_net, *train_w, args.vp_steps, seed=args.seed)
        console.print(
            f"VP training: {args.vp_steps} steps in {time.perf_counter() - started:.0f} s, "
            f"L1 {vp_losses[0] * 90:.2f} -> {np.mean(vp_losses[-20:]) * 90:.2f} degrees"
        )
        vp = evaluate_vp(vp_net, train_w, test_w)
        table = Table(
            "VP method", "MAE 0.2 s", "0.4 s", "0.6 s", "0.8 s", "1.0 s", "mean", "vs best baseline"
        )
        best = min(v for k, v in vp["mae"].items() if k != "netllm")
        for name, steps in vp["mae_by_step"].items():
            mean = vp["mae"][name]
            table.add_row(
                name,
                *(f"{x:.2f}" for x in steps),
                f"{mean:.2f}",
                f"{(best - mean) / best:+.1%}" if name == "netllm" else "",
            )
        console.print(
            f"{vp['windows']:,} test windows of held-out users; adapter "
            f"{vp['latency_ms_per_window']:.2f} ms per window (batched)"
        )
        console.print(table)


if __name__ == "__main__":
    main()
