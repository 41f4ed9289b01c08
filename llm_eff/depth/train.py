"""Train Dr.LLM routers: search plans on training examples, fit the routers, evaluate.

1. For each training example, MCTS (`search.search_plan`) finds the cheapest plan under which
   the frozen model still (or newly) picks the right option.
2. The routers are fitted to those plans with teacher forcing: each router sees the states
   its layer receives under the example's plan, and learns that plan's action there. The loss
   is focal (gamma 2) with class-balanced weights (effective number of samples, beta 0.999),
   because "execute" dominates the labels.
3. Evaluation on held-out examples: accuracy and mean layers executed for full depth, the
   routed model, random skipping at the same average depth, and static pruning of the layers
   the plans skip most often.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from llm_eff.depth.plans import SKIP, apply_plan, full_plan, layers_executed
from llm_eff.depth.router import DrLLM
from llm_eff.depth.search import search_plan
from llm_eff.depth.tasks import Example, option_scores

Progress = Callable[[str, int, int], None] | None


def correct_under(model: DrLLM, tokenizer: Any, example: Example, plan: Any) -> bool:
    """True if the frozen model picks the right option when run under `plan`."""
    with apply_plan(model.base, plan):
        return int(option_scores(model.base, tokenizer, example).argmax()) == example.answer


def _encode(tokenizer: Any, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


@dataclass
class Labels:
    """Search results: the plans (None where no plan is correct) and search statistics."""

    plans: list[tuple[int, ...] | None]
    full_correct: list[bool]
    evaluated: int
    seconds: float


def collect_plans(
    model: DrLLM,
    tokenizer: Any,
    examples: list[Example],
    simulations: int = 40,
    length_penalty: float = 0.2,
    seed: int = 0,
    progress: Progress = None,
) -> Labels:
    """MCTS supervision plans for `examples` (step 1 of the module docstring)."""
    started = time.perf_counter()
    plans, full, evaluated = [], [], 0
    for i, example in enumerate(examples):
        result = search_plan(
            lambda plan, ex=example: correct_under(model, tokenizer, ex, plan),
            model.depth,
            simulations=simulations,
            length_penalty=length_penalty,
            seed=seed + i,
        )
        plans.append(result.plan)
        full.append(result.full_correct)
        evaluated += result.evaluated
        if progress:
            progress("search", i + 1, len(examples))
    return Labels(plans, full, evaluated, time.perf_counter() - started)


def class_weights(labels: torch.Tensor, classes: int = 3, beta: float = 0.999) -> torch.Tensor:
    """Class-balanced weights (1 - beta) / (1 - beta^n_c), scaled to sum to `classes`."""
    counts = torch.bincount(labels, minlength=classes).float()
    weights = torch.where(counts > 0, (1 - beta) / (1 - beta**counts), torch.zeros_like(counts))
    return weights * classes / weights.sum()


def focal_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, gamma: float = 2.0
) -> torch.Tensor:
    """Mean of -w_y (1 - p_y)^gamma log p_y."""
    logp = torch.log_softmax(logits, dim=-1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return (-weights[labels] * (1 - logp.exp()) ** gamma * logp).mean()


def fit_routers(
    model: DrLLM,
    tokenizer: Any,
    examples: list[Example],
    labels: Labels,
    epochs: int = 300,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Progress = None,
) -> dict[str, float]:
    """Fit the routers to the plans (step 2 of the module docstring); returns statistics."""
    keep = [(e, p) for e, p in zip(examples, labels.plans, strict=True) if p is not None]
    if not keep:
        return {"examples": 0, "final_loss": float("nan")}
    ids, mask = _encode(tokenizer, [e.prompt for e, _ in keep])
    plans = [list(p) for _, p in keep]
    _, features, _ = model.walk(ids, mask, plans)
    targets = torch.tensor(plans)  # (N, depth)
    weights = class_weights(targets.flatten())
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.routers.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for epoch in range(epochs):
        logits = torch.cat([model.routers[i](features[i]) for i in range(model.depth)])
        loss = focal_loss(logits, targets.T.flatten(), weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if progress:
            progress("fit", epoch + 1, epochs)
    with torch.no_grad():
        logits = torch.stack([model.routers[i](features[i]) for i in range(model.depth)], dim=1)
        agree = float((logits.argmax(-1) == targets).float().mean())
    return {
        "examples": len(keep),
        "final_loss": float(loss.detach()),
        "train_label_agreement": agree,
    }


def static_skips(labels: Labels, count: int) -> list[int]:
    """The `count` layers the supervision plans skip most often."""
    plans = [p for p in labels.plans if p is not None]
    depth = len(plans[0]) if plans else 0
    freq = [sum(p[i] == SKIP for p in plans) for i in range(depth)]
    return sorted(sorted(range(depth), key=lambda i: -freq[i])[:count])


def evaluate_depth(
    model: DrLLM,
    tokenizer: Any,
    examples: list[Example],
    labels: Labels,
    seed: int = 0,
    progress: Progress = None,
) -> dict[str, dict[str, float]]:
    """Accuracy and mean layers executed per system (step 3 of the module docstring)."""
    ids, mask = _encode(tokenizer, [e.prompt for e in examples])
    routed = model.route(ids, mask)
    mean_layers = sum(layers_executed(p) for p in routed) / len(routed)
    skip_count = max(0, round(model.depth - mean_layers))
    static = full_plan(model.depth)
    for i in static_skips(labels, skip_count):
        static[i] = SKIP
    rng = random.Random(seed)
    systems: dict[str, list[list[int]]] = {
        "full depth": [full_plan(model.depth)] * len(examples),
        "Dr.LLM routed": routed,
        "random skipping": [],
        "static pruning": [static] * len(examples),
    }
    for _ in examples:
        plan = full_plan(model.depth)
        for i in rng.sample(range(model.depth), skip_count):
            plan[i] = SKIP
        systems["random skipping"].append(plan)
    out = {}
    total = len(systems) * len(examples)
    done = 0
    for name, plans in systems.items():
        hits = 0
        for example, plan in zip(examples, plans, strict=True):
            hits += correct_under(model, tokenizer, example, plan)
            done += 1
            if progress:
                progress("evaluate", done, total)
        out[name] = {
            "accuracy": hits / len(examples),
            "mean_layers": sum(layers_executed(p) for p in plans) / len(plans),
        }
    return out
