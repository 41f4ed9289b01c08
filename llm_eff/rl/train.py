"""`llm-eff rl train`: load the model and tasks, run PPO or GRPO, save a LoRA adapter.

The output directory holds the adapter in peft's layout with its base model recorded (so
`llm-eff eval --system OUT` evaluates the tuned policy), `run.json` (what was asked for),
`log.jsonl` (PPO's per-step statistics) or `trl/` (GRPO's checkpoints and log), and
`summary.json`. Rerunning the same command resumes from the newest checkpoint.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.rl.grpo import GRPOSettings, train_grpo
from llm_eff.rl.ppo import PPOConfig, Progress, Scorer, train_ppo
from llm_eff.rl.reward import ExecutionReward, RewardConfig, check_task

ALGOS = ("ppo", "grpo")
RUN_FILE = "run.json"


def make_scorer(benchmark: Any, reward: ExecutionReward, workers: int = 2) -> Scorer:
    """Texts and task ids -> (reward, info) each, programs run `workers` at a time."""
    by_id = {t.id: t for t in benchmark.tasks}

    def one(text: str, task_id: str) -> tuple[float, dict[str, Any]]:
        task = by_id[task_id]
        result = reward(benchmark.program_of(task, text), task)
        ratio = (
            result.runtime_s / result.reference_s
            if result.runtime_s is not None and result.reference_s
            else None
        )
        info = {"passed": result.status == "passed", "status": result.status}
        return result.reward, {**info, "runtime_ratio": ratio}

    def score(texts: list[str], task_ids: list[str]) -> list[tuple[float, dict[str, Any]]]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, texts, task_ids))

    return score


def check_tasks(benchmark: Any) -> Any:
    """`benchmark` (an evals Benchmark, loaded by the caller), checked usable for RL: Python
    tasks, each with tests. RL takes benchmarks from above and never loads them itself."""
    if not benchmark.tasks:
        raise UserError(f"benchmark {benchmark.name} has no tasks")
    for task in benchmark.tasks:
        check_task(task)
    return benchmark


def load_policy(model_spec: str, rank: int) -> tuple[Any, Any]:
    """(LoRA policy, tokenizer) over the base model; UserError if the model does not load."""
    from llm_eff.peft.api import prepare
    from llm_eff.peft.config import MethodConfig
    from llm_eff.peft.train import load_base

    try:
        base, tokenizer = load_base(model_spec, "lora")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"model {model_spec} does not load: {exc}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return prepare(base, MethodConfig("lora", rank=rank, alpha=2.0 * rank)), tokenizer


def _check_resume(out: Path, run: dict[str, Any]) -> None:
    """UserError if `out` holds a different run (resuming it would mix two runs)."""
    path = out / RUN_FILE
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    free = ("steps", "save_every")  # a run may be extended, or checkpointed more often

    def fixed(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "settings": {k: v for k, v in r.get("settings", {}).items() if k not in free}}

    keys = ("algo", "model", "tasks", "settings", "reward", "rank")
    changed = [k for k in keys if fixed(saved).get(k) != fixed(run).get(k)]
    if changed:
        raise UserError(
            f"{out} holds a different run (differs in {', '.join(changed)}); "
            "use a new --out, or the same options to resume"
        )


def rl_train(
    algo: str,
    model_spec: str,
    benchmark: Any,
    out: Path,
    settings: dict[str, Any],
    reward_config: RewardConfig | None = None,
    rank: int = 8,
    progress: Progress = None,
) -> dict[str, Any]:
    """Train with `algo` ('ppo' or 'grpo') on `benchmark`'s tasks (an evals Benchmark); returns
    the summary also written to `out`."""
    if algo not in ALGOS:
        raise UserError(f"unknown algorithm '{algo}' (use {' or '.join(ALGOS)})")
    config = PPOConfig.from_dict(settings) if algo == "ppo" else GRPOSettings.from_dict(settings)
    reward_config = reward_config or RewardConfig()
    run = {
        "algo": algo,
        "model": model_spec,
        "tasks": benchmark.name,
        "settings": asdict(config),
        "reward": reward_config.to_dict(),
        "rank": rank,
    }
    out = Path(out)
    _check_resume(out, run)
    check_tasks(benchmark)
    policy, tokenizer = load_policy(model_spec, rank)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    score = make_scorer(benchmark, ExecutionReward(reward_config))
    started = time.perf_counter()
    if isinstance(config, PPOConfig):
        history = train_ppo(
            policy, tokenizer, benchmark.tasks, score, out, config, benchmark.stop, progress
        )
    else:
        history = train_grpo(policy, tokenizer, benchmark.tasks, score, out, config, progress)
    from llm_eff.peft.api import save

    save(policy, out, "lora", base_model=model_spec)
    tokenizer.save_pretrained(str(out))
    summary = {
        **run,
        "steps_logged": len(history),
        "train_seconds_this_run": round(time.perf_counter() - started, 1),
        "last": history[-1] if history else {},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
