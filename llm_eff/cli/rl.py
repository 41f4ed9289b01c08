"""`llm-eff rl train`: code-efficiency RL (PPO or GRPO) with the execution reward."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_eff.core.cli import Commands, friendly, make_console, progress_bar

COMMANDS = Commands()

rl_app = typer.Typer(
    help="Reinforcement learning for correct and fast code: PPO or GRPO on a LoRA adapter, "
    "rewarded by running the programs' tests and timing them in the sandbox.",
    no_args_is_help=True,
)
COMMANDS.group(rl_app, "rl")


def _reward_config(path: Path | None, timeout_s: float) -> Any:
    from llm_eff.core.errors import UserError
    from llm_eff.rl.reward import RewardConfig

    values: dict[str, Any] = {}
    if path is not None:
        import yaml

        if not path.is_file():
            raise UserError(f"reward config not found: {path}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML/JSON ({exc})") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of reward settings")
    values.setdefault("timeout_s", timeout_s)
    return RewardConfig.from_dict(values)


@rl_app.command("train")
@friendly
def train_command(
    out: Annotated[Path, typer.Option(help="Directory for the adapter, log and checkpoints.")],
    algo: Annotated[
        str, typer.Option(help="ppo (compact PPO with a value head) or grpo (trl).")
    ] = "ppo",
    model: Annotated[
        str, typer.Option(help="Base model: smollm2-135m, tiny-llama or hf:DIR.")
    ] = "smollm2-135m",
    tasks: Annotated[
        str,
        typer.Option(
            help="Benchmark spec of the training tasks, e.g. efficiency:train, "
            "ncb-python, humaneval:FILE (every task needs tests)."
        ),
    ] = "efficiency:train",
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 20,
    batch_size: Annotated[
        int, typer.Option(min=1, help="PPO: prompts per step; GRPO: completions per step.")
    ] = 4,
    samples: Annotated[
        int, typer.Option(min=1, help="Completions per prompt (PPO samples, GRPO group size).")
    ] = 2,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens per completion.")] = 192,
    temperature: Annotated[float, typer.Option(min=0.01, help="Sampling temperature.")] = 0.8,
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate.")] = 5e-5,
    kl_coef: Annotated[float, typer.Option(min=0.0, help="KL penalty to the base model.")] = 0.05,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 8,
    reward_config: Annotated[
        Path | None, typer.Option(help="YAML/JSON with reward constants (see docs).")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.5, help="Sandbox seconds per program.")] = 10.0,
    save_every: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Fine-tune a LoRA adapter so the model's programs pass their tests and run faster.

    Rerun the same command to resume from the last checkpoint. Evaluate the result with
    `llm-eff eval --bench efficiency:test --system smollm2-135m --system OUT`."""

    from evals.benchmarks.registry import load_benchmark
    from llm_eff.core.errors import UserError
    from llm_eff.rl.train import ALGOS, check_tasks, rl_train

    if algo == "ppo":
        settings: dict[str, Any] = {
            "batch_size": batch_size,
            "samples_per_prompt": samples,
            "kl_coef": kl_coef,
            "minibatch_size": min(4, batch_size * samples),
        }
    else:
        settings = {"batch_size": batch_size, "num_generations": samples, "beta": kl_coef}
    settings.update(
        steps=steps,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        learning_rate=lr,
        seed=seed,
        save_every=save_every,
    )
    console = make_console()
    rewards = _reward_config(reward_config, timeout)
    if algo not in ALGOS:
        raise UserError(f"unknown algorithm '{algo}' (use {' or '.join(ALGOS)})")
    benchmark = check_tasks(load_benchmark(tasks))  # bad task specs fail here, before any bar
    with progress_bar(console) as bar:
        job = bar.add_task(f"{algo} steps", total=steps)

        def progress(step: int, total: int, stats: dict[str, float]) -> None:
            reward = stats.get("reward_mean", stats.get("reward", math.nan))
            bar.update(job, completed=step, description=f"{algo} steps (reward {reward:+.3f})")

        summary = rl_train(algo, model, benchmark, out, settings, rewards, rank, progress)
    last = summary["last"]
    shown = {k: last[k] for k in ("reward_mean", "reward", "pass_rate", "kl_to_ref") if k in last}
    console.print(f"saved the {algo} adapter to {out}; last step: {shown}")
    console.print(f"evaluate: llm-eff eval --bench efficiency:test --system {model} --system {out}")
