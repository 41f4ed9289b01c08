"""GRPO through trl's `GRPOTrainer`, with the same execution reward as PPO.

trl samples `num_generations` completions per prompt, scores them with `reward_funcs` (here
one function wrapping the execution reward: `reward_function`), normalises rewards within
each prompt's group and takes clipped policy-gradient steps on the LoRA adapter. Its
checkpoints go to `out/trl/checkpoint-N`, and a rerun resumes from the newest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.core.settings import from_mapping
from llm_eff.rl.ppo import Progress, Scorer


@dataclass
class GRPOSettings:
    """The GRPO settings exposed here (the rest keep trl's defaults)."""

    steps: int = 20
    batch_size: int = 4  # completions per optimisation step
    num_generations: int = 4  # completions per prompt (the group)
    max_new_tokens: int = 192
    temperature: float = 0.8
    learning_rate: float = 5e-5
    beta: float = 0.0  # KL coefficient to the reference model (trl's default: none)
    seed: int = 0
    save_every: int = 5

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GRPOSettings:
        """Settings from a mapping; UserError naming any unknown key."""
        return from_mapping(cls, values, "GRPO setting")


def _text(completion: Any) -> str:
    """A completion's text: trl passes strings, or message lists for chat prompts."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def reward_function(score: Scorer, log: list[dict[str, Any]] | None = None) -> Any:
    """A trl reward function: completions and their `task_id` column -> rewards."""

    def execution_reward(completions: list[Any], task_id: list[str], **_: Any) -> list[float]:
        scored = score([_text(c) for c in completions], list(task_id))
        if log is not None:
            log.extend(info for _, info in scored)
        return [float(s) for s, _ in scored]

    return execution_reward


def train_grpo(
    policy: Any,
    tokenizer: Any,
    tasks: list[Any],
    score: Scorer,
    out: Path,
    settings: GRPOSettings,
    progress: Progress = None,
) -> list[dict[str, float]]:
    """Train the LoRA `policy` (a peft model) with trl's GRPOTrainer; returns trl's log."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    if settings.batch_size % settings.num_generations:
        raise UserError("GRPO: batch_size must be a multiple of num_generations")
    rows = [{"prompt": [{"role": "user", "content": t.prompt}], "task_id": t.id} for t in tasks]
    if not getattr(tokenizer, "chat_template", None):
        rows = [{"prompt": t.prompt, "task_id": t.id} for t in tasks]
    trl_dir = out / "trl"
    args = GRPOConfig(
        output_dir=str(trl_dir),
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_new_tokens,
        temperature=settings.temperature,
        learning_rate=settings.learning_rate,
        beta=settings.beta,
        seed=settings.seed,
        logging_steps=1,
        save_steps=settings.save_every,
        save_strategy="steps",
        save_total_limit=2,
        report_to="none",
        bf16=False,
        fp16=False,
        use_cpu=not _cuda(),
        disable_tqdm=progress is not None,
        dataloader_num_workers=0,
    )
    rewards: list[dict[str, Any]] = []
    history: list[dict[str, float]] = []

    class Report(TrainerCallback):
        def on_log(self, _args: Any, state: Any, _control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "reward" in logs:
                history.append({"step": state.global_step, **logs})
                if progress:
                    progress(state.global_step, settings.steps, logs)

    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[reward_function(score, rewards)],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[Report()],
    )
    if progress is not None:  # our progress bar replaces the Trainer's printed log dicts
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    last = get_last_checkpoint(str(trl_dir)) if trl_dir.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    return history


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
