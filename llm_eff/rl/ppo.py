"""A compact PPO for code generation with the execution reward (ACECode's algorithm).

One step: sample `batch_size` tasks, generate `samples_per_prompt` programs each with the LoRA
policy, score them with the execution reward (sandbox), then

    per-token reward   r_t = -kl_coef * (log pi(a_t) - log pi_ref(a_t)),  plus the program's
                       score on its last token (pi_ref: the same model with the adapter off)
    advantages         GAE(gamma, lam) over the response tokens, whitened over the batch
    policy loss        -min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)
    value loss         0.5 * max((V - R)^2, (V_clipped - R)^2), V_clipped within value_clip
                       of the rollout's value

for `epochs` passes over minibatches. The value head is a linear layer over the backbone's
last hidden state. The maths functions (`gae`, `token_rewards`, `ppo_losses`) are plain tensor
functions, tested on hand-computed cases.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_eff.backends.base import user_chat
from llm_eff.backends.transformers_backend import encode_chats
from llm_eff.core.settings import from_mapping

Progress = Callable[[int, int, dict[str, float]], None] | None


@dataclass
class PPOConfig:
    """PPO hyper-parameters (module docstring) and the rollout settings."""

    steps: int = 20
    batch_size: int = 4
    samples_per_prompt: int = 2
    max_new_tokens: int = 192
    temperature: float = 0.8
    learning_rate: float = 5e-5
    epochs: int = 2
    minibatch_size: int = 4
    clip: float = 0.2
    value_clip: float = 0.2
    kl_coef: float = 0.05
    gamma: float = 1.0
    lam: float = 0.95
    value_coef: float = 0.5
    max_grad_norm: float = 1.0
    seed: int = 0
    save_every: int = 5

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PPOConfig:
        """A config from a mapping; UserError naming any unknown key."""
        return from_mapping(cls, values, "PPO setting")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over positions where `mask` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` shifted to mean 0 and scaled to std 1 over the masked positions (zeros elsewhere)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def token_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """Per-token rewards (B, T): the KL penalty everywhere, plus each score on its last token."""
    rewards = -kl_coef * (logprobs - ref_logprobs) * mask
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both (B, T), by generalised advantage estimation.

    delta_t = r_t + gamma * V_{t+1} - V_t (V after the last valid token is 0) and
    A_t = delta_t + gamma * lam * A_{t+1}; returns = A + V. Padded positions stay 0.
    """
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(steps)):
        next_mask = mask[:, t + 1] if t + 1 < steps else torch.zeros_like(mask[:, 0])
        next_value = values[:, t + 1] * next_mask if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running * next_mask) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def ppo_losses(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    value_clip: float,
) -> dict[str, torch.Tensor]:
    """Clipped policy loss, clipped value loss, clip fraction and approximate KL to the rollout."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    policy_loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).float(), mask)
    values_clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
    value_loss = 0.5 * masked_mean(
        torch.max((values - returns) ** 2, (values_clipped - returns) ** 2), mask
    )
    approx_kl = masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask)
    return {"policy": policy_loss, "value": value_loss, "clip_frac": clip_frac, "kl": approx_kl}


class ActorCritic(nn.Module):
    """A peft LoRA causal LM (the actor) with a linear value head on its last hidden state."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        hidden = policy.get_base_model().config.hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden + 1) ** 0.5)
        nn.init.zeros_(self.value_head.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_len: int,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs, values) of the response tokens (B, T): positions from `prompt_len` on.

        Log-probs are those of the sampling distribution (logits / `temperature`), so the
        PPO ratio and the KL estimate refer to the policy that generated the rollout.
        """
        base = self.policy.get_base_model()
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = base.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions
        ).last_hidden_state[:, prompt_len - 1 : -1]
        logits = base.lm_head(hidden).float() / temperature
        targets = input_ids[:, prompt_len:]
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return logprobs, self.value_head(hidden.float()).squeeze(-1)


@dataclass
class Rollout:
    """One batch of generated programs with what PPO needs about them."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask: torch.Tensor  # response tokens up to and including the stop
    prompt_len: int
    texts: list[str]
    task_ids: list[str]


def generate_rollout(
    model: ActorCritic,
    tokenizer: Any,
    tasks: list[Any],
    config: PPOConfig,
    stop: tuple[str, ...] = (),
) -> Rollout:
    """Sample `samples_per_prompt` responses for each task's prompt."""
    repeated = [t for t in tasks for _ in range(config.samples_per_prompt)]
    enc = encode_chats(tokenizer, [user_chat(t.prompt) for t in repeated])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens,
        "do_sample": True,
        "temperature": config.temperature,
        "top_p": 1.0,
        "top_k": 0,  # no truncation: samples follow softmax(logits / T), the policy PPO scores
        "pad_token_id": pad_id,
    }
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    with torch.no_grad():
        generated = model.policy.generate(**enc, **kwargs)
    prompt_len = enc["input_ids"].shape[1]
    response = generated[:, prompt_len:]
    stop_ids = {pad_id, tokenizer.eos_token_id}
    mask = torch.zeros_like(response, dtype=torch.float32)
    texts = []
    for i, row in enumerate(response.tolist()):
        n = next((j + 1 for j, tok in enumerate(row) if tok in stop_ids), len(row))
        mask[i, :n] = 1.0
        texts.append(tokenizer.decode(row[:n], skip_special_tokens=True))
    attention = torch.cat([enc["attention_mask"], mask.long()], dim=1)
    return Rollout(generated, attention, mask, prompt_len, texts, [t.id for t in repeated])


Scorer = Callable[[list[str], list[str]], list[tuple[float, dict[str, Any]]]]


def ppo_step(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    scores: torch.Tensor,
    config: PPOConfig,
) -> dict[str, float]:
    """PPO epochs over one scored rollout; returns the step's statistics."""
    ids, attn, mask, plen = (
        rollout.input_ids,
        rollout.attention_mask,
        rollout.mask,
        rollout.prompt_len,
    )
    with torch.no_grad():
        old_logprobs, old_values = model(ids, attn, plen, config.temperature)
        with model.policy.disable_adapter():
            ref_logprobs, _ = model(ids, attn, plen, config.temperature)
        rewards = token_rewards(scores, old_logprobs, ref_logprobs, mask, config.kl_coef)
        advantages, returns = gae(rewards, old_values, mask, config.gamma, config.lam)
        advantages = whiten(advantages, mask)
    stats: dict[str, list[float]] = {"policy": [], "value": [], "clip_frac": [], "kl": []}
    params = [p for p in model.parameters() if p.requires_grad]
    order = list(range(len(ids)))
    rng = random.Random(config.seed)
    for _ in range(config.epochs):
        rng.shuffle(order)
        for first in range(0, len(order), config.minibatch_size):
            idx = torch.tensor(order[first : first + config.minibatch_size])
            logprobs, values = model(ids[idx], attn[idx], plen, config.temperature)
            losses = ppo_losses(
                logprobs,
                old_logprobs[idx],
                advantages[idx],
                values,
                old_values[idx],
                returns[idx],
                mask[idx],
                config.clip,
                config.value_clip,
            )
            loss = losses["policy"] + config.value_coef * losses["value"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            for key, value in losses.items():
                stats[key].append(float(value.detach()))
    kl_to_ref = ((old_logprobs - ref_logprobs) * mask).sum(dim=1).mean()
    return {
        "policy_loss": sum(stats["policy"]) / len(stats["policy"]),
        "value_loss": sum(stats["value"]) / len(stats["value"]),
        "clip_frac": sum(stats["clip_frac"]) / len(stats["clip_frac"]),
        "approx_kl": sum(stats["kl"]) / len(stats["kl"]),
        "kl_to_ref": float(kl_to_ref),
        "response_tokens": float(mask.sum(dim=1).mean()),
    }


def _save_checkpoint(
    model: ActorCritic, optimizer: torch.optim.Optimizer, out: Path, state: dict[str, Any]
) -> None:
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    tmp = out / ".checkpoint.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(get_peft_model_state_dict(model.policy), str(tmp / "adapter.safetensors"))
    torch.save(
        {"value_head": model.value_head.state_dict(), "optimizer": optimizer.state_dict()},
        tmp / "trainer.pt",
    )
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    final = out / "checkpoint"
    if final.exists():
        old = out / f".checkpoint.old-{time.time_ns()}"
        final.rename(old)
        tmp.rename(final)
        import shutil

        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def _load_checkpoint(
    model: ActorCritic, optimizer: torch.optim.Optimizer, out: Path
) -> dict[str, Any] | None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    ckpt = out / "checkpoint"
    if not (ckpt / "state.json").is_file():
        return None
    set_peft_model_state_dict(model.policy, load_file(str(ckpt / "adapter.safetensors")))
    saved = torch.load(ckpt / "trainer.pt", weights_only=True)
    model.value_head.load_state_dict(saved["value_head"])
    optimizer.load_state_dict(saved["optimizer"])
    return json.loads((ckpt / "state.json").read_text())


def train_ppo(
    policy: nn.Module,
    tokenizer: Any,
    tasks: list[Any],
    score: Scorer,
    out: Path,
    config: PPOConfig,
    stop: tuple[str, ...] = (),
    progress: Progress = None,
) -> list[dict[str, float]]:
    """Train the LoRA `policy` (a peft model) with PPO; resumes from `out/checkpoint`.

    `score(texts, task_ids)` returns (reward, info) per response, info holding `passed` and
    `runtime_ratio` (t_gen / t_ref, for passing programs). Each step's statistics are
    appended to `out/log.jsonl`; returns all steps' statistics.
    """
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = ActorCritic(policy)
    model.eval()  # no dropout: the rollout's and the update's log-probs agree at ratio 1
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate
    )
    state = _load_checkpoint(model, optimizer, out) or {"step": 0, "rng": None}
    rng = random.Random(config.seed)
    if state["rng"] is not None:
        rng.setstate(_as_state(state["rng"]))
    log_path = out / "log.jsonl"
    history = (
        [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
    )
    history = [h for h in history if h["step"] <= state["step"]]
    log_path.write_text("".join(json.dumps(h) + "\n" for h in history))
    for step in range(state["step"] + 1, config.steps + 1):
        started = time.perf_counter()
        batch = [rng.choice(tasks) for _ in range(config.batch_size)]
        torch.manual_seed(config.seed * 100_003 + step)
        rollout = generate_rollout(model, tokenizer, batch, config, stop)
        scored = score(rollout.texts, rollout.task_ids)
        scores = torch.tensor([s for s, _ in scored], dtype=torch.float32)
        stats: dict[str, Any] = ppo_step(model, optimizer, rollout, scores, config)
        ratios = [i["runtime_ratio"] for _, i in scored if i.get("runtime_ratio") is not None]
        stats.update(
            step=step,
            reward_mean=float(scores.mean()),
            pass_rate=sum(bool(i.get("passed")) for _, i in scored) / len(scored),
            runtime_ratio=sum(ratios) / len(ratios) if ratios else None,
            seconds=time.perf_counter() - started,
        )
        history.append(stats)
        with log_path.open("a") as fh:
            fh.write(json.dumps(stats) + "\n")
        if step % config.save_every == 0 or step == config.steps:
            state = {"step": step, "rng": rng.getstate(), "config": asdict(config)}
            _save_checkpoint(model, optimizer, out, state)
        if progress:
            progress(step, config.steps, stats)
    return history


def _as_state(saved: Any) -> tuple:
    """A JSON round-tripped `random.getstate()` back as the tuple `setstate` takes."""
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)
