"""`llm-eff netllm abr|vp train|eval`: NetLLM adapters for adaptive bitrate and viewport
prediction, compared with the classic baselines on held-out traces/users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from llm_eff.core.cli import Commands, friendly, make_console, progress_bar

COMMANDS = Commands()

netllm_app = typer.Typer(
    help="Adapt a language model to networking tasks (NetLLM): abr (adaptive bitrate) and vp "
    "(360-degree viewport prediction).",
    no_args_is_help=True,
)
abr_app = typer.Typer(help="Adaptive bitrate streaming.", no_args_is_help=True)
vp_app = typer.Typer(help="Viewport prediction.", no_args_is_help=True)
netllm_app.add_typer(abr_app, name="abr")
netllm_app.add_typer(vp_app, name="vp")
COMMANDS.group(netllm_app, "netllm")

MODEL_HELP = "Backbone: smollm2-135m, hf:DIR or tiny-llama."


def _refuse_existing(out: Path, overwrite: bool) -> None:
    from llm_eff.core.errors import UserError

    if out.exists() and not overwrite:
        raise UserError(f"output directory exists: {out} (pass --overwrite to replace it)")


def _backbone(model: str):  # noqa: ANN202
    from llm_eff.peft.train import load_base

    return load_base(model, "lora")[0]


@abr_app.command("train")
@friendly
def abr_train(
    traces: Annotated[Path, typer.Option(help="Training traces (lines: time_s Mbps).")],
    video: Annotated[Path, typer.Option(help="Folder with video_size_0..5 (bytes per chunk).")],
    out: Annotated[Path, typer.Option(help="Where to save the adapter.")],
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "smollm2-135m",
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps.")] = 300,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-4,
    seed: Annotated[int, typer.Option()] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Collect the baselines' experience on the training traces and train the adapter on it."""
    import torch

    from llm_eff.netllm.abr import load_traces, load_video
    from llm_eff.netllm.adapter import NetLLM
    from llm_eff.netllm.train import (
        collect_experience,
        return_range,
        target_return,
        train_abr,
        write_config_extra,
    )

    _refuse_existing(out, overwrite)
    train_traces, sizes = load_traces(traces), load_video(video)
    console = make_console()
    torch.manual_seed(seed)
    with progress_bar(console) as bar:
        job = bar.add_task("experience (bba, rate, mpc)", total=None)
        pool = collect_experience(train_traces, sizes)
        bar.update(job, total=1, completed=1)
        net = NetLLM(_backbone(model), "abr")
        job = bar.add_task("training", total=steps)
        losses = train_abr(
            net,
            pool,
            steps,
            batch_size,
            lr=lr,
            seed=seed,
            progress=lambda d, t: bar.update(job, completed=d),
        )
    net.save(out, model)
    write_config_extra(
        out,
        target_return=target_return(pool),
        final_loss=losses[-1],
        pool_sessions=len(pool),
        steps=steps,
        return_bounds=list(return_range(pool)),
    )
    console.print(f"saved ABR adapter to {out} (final loss {losses[-1]:.3f}, {len(pool)} sessions)")


@abr_app.command("eval")
@friendly
def abr_eval(
    adapter: Annotated[Path, typer.Option(help="A saved ABR adapter.")],
    traces: Annotated[Path, typer.Option(help="Test traces.")],
    video: Annotated[Path, typer.Option(help="Folder with video_size_0..5.")],
    run: Annotated[Path, typer.Option(help="Run log to append attempts to.")] = Path(
        "runs/netllm-abr.jsonl"
    ),
    limit: Annotated[int | None, typer.Option(min=1, help="First N traces.")] = None,
) -> None:
    """Mean QoE of the adapter and of BBA, rate-based and robust MPC on the test traces."""
    from llm_eff.netllm.abr import load_traces, load_video
    from llm_eff.netllm.adapter import load_netllm
    from llm_eff.netllm.records import abr_attempts
    from llm_eff.netllm.train import evaluate_abr

    net, config = load_netllm(adapter)
    test, sizes = load_traces(traces)[: limit or None], load_video(video)
    console = make_console()
    with progress_bar(console) as bar:
        job = bar.add_task("test traces", total=len(test))
        bounds = tuple(config["return_bounds"]) if config.get("return_bounds") else None
        result = evaluate_abr(
            net,
            config["target_return"],
            test,
            sizes,
            progress=lambda d, t: bar.update(job, completed=d),
            bounds=bounds,
        )
    from llm_eff.core.runlog import RunLog

    log = RunLog(run)
    for attempt in abr_attempts(result, str(adapter)):
        log.append(attempt)
    _print_table(console, "mean QoE per chunk", result["qoe"])
    console.print(
        f"adapter decision latency: {result['latency_ms']:.1f} ms alone, "
        f"{result['batched_latency_ms']:.2f} ms per decision in lockstep batches; run log: {run}"
    )


@vp_app.command("train")
@friendly
def vp_train(
    data: Annotated[Path, typer.Option(help="Viewport traces: videoN/5Hz/*.csv.")],
    out: Annotated[Path, typer.Option(help="Where to save the adapter.")],
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "smollm2-135m",
    steps: Annotated[int, typer.Option(min=1)] = 300,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    history: Annotated[int, typer.Option(min=2, help="Past samples (5 Hz).")] = 10,
    horizon: Annotated[int, typer.Option(min=1, help="Future samples to predict.")] = 5,
    lr: Annotated[float, typer.Option()] = 3e-4,
    seed: Annotated[int, typer.Option(help="Also fixes the user split.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Train the adapter on the training users' windows."""
    import torch

    from llm_eff.netllm.adapter import NetLLM
    from llm_eff.netllm.train import train_vp, vp_split, write_config_extra

    _refuse_existing(out, overwrite)
    (train_past, train_future), _ = vp_split(data, history, horizon, seed)
    torch.manual_seed(seed)
    net = NetLLM(_backbone(model), "vp", horizon=horizon, history=history)
    console = make_console()
    with progress_bar(console) as bar:
        job = bar.add_task("training", total=steps)
        losses = train_vp(
            net,
            train_past,
            train_future,
            steps,
            batch_size,
            lr=lr,
            seed=seed,
            progress=lambda d, t: bar.update(job, completed=d),
        )
    net.save(out, model)
    write_config_extra(out, split_seed=seed, final_loss=losses[-1], steps=steps)
    console.print(f"saved VP adapter to {out} (final L1 {losses[-1] * 90:.2f} degrees)")


@vp_app.command("eval")
@friendly
def vp_eval(
    adapter: Annotated[Path, typer.Option(help="A saved VP adapter.")],
    data: Annotated[Path, typer.Option(help="Viewport traces: videoN/5Hz/*.csv.")],
    run: Annotated[Path, typer.Option(help="Run log to append attempts to.")] = Path(
        "runs/netllm-vp.jsonl"
    ),
    lstm_epochs: Annotated[int, typer.Option(min=1, help="LSTM baseline epochs.")] = 5,
) -> None:
    """MAE per horizon step of the adapter and the baselines on the held-out users."""
    from llm_eff.core.runlog import RunLog
    from llm_eff.netllm.adapter import load_netllm
    from llm_eff.netllm.records import vp_attempts
    from llm_eff.netllm.train import evaluate_vp, vp_split

    net, config = load_netllm(adapter)
    train, test = vp_split(data, config["history"], config["horizon"], config.get("split_seed", 0))
    console = make_console()
    with console.status("scoring the test windows and training the LSTM baseline"):
        result = evaluate_vp(net, train, test, lstm_epochs)
    log = RunLog(run)
    for attempt in vp_attempts(result, str(adapter)):
        log.append(attempt)
    _print_table(console, "MAE (degrees, mean over horizon)", result["mae"])
    console.print(
        f"{result['windows']:,} test windows; adapter "
        f"{result['latency_ms_per_window']:.2f} ms per window; run log: {run}\n"
        + json.dumps({k: [round(x, 2) for x in v] for k, v in result["mae_by_step"].items()})
    )


def _print_table(console, title: str, values: dict[str, float]) -> None:  # noqa: ANN001
    from rich.table import Table

    table = Table("method", title)
    for name, value in values.items():
        table.add_row(name, f"{value:.3f}")
    console.print(table)
