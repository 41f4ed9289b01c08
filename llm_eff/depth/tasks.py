"""Multiple-choice tasks with known answers, scored by log-likelihood, for depth routing.

`arith`: two-digit additions and subtractions with four numeric options (the answer and three
numbers 7 to 40 away from it). Generated from a seed, so train and
held-out sets are disjoint by construction (`make_examples` draws distinct questions).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from llm_eff.core.errors import UserError

TASKS = ("arith",)


@dataclass(frozen=True)
class Example:
    """A question, its options and the index of the right one."""

    prompt: str
    options: tuple[str, ...]
    answer: int


def _arith(rng: random.Random) -> Example:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    op = rng.choice("+-")
    value = a + b if op == "+" else a - b
    wrong = rng.sample([v for v in range(value - 40, value + 41) if abs(v - value) >= 7], 3)
    options = [value, *wrong]
    rng.shuffle(options)
    return Example(
        f"Question: What is {a} {op} {b}?\nAnswer:",
        tuple(f" {x}" for x in options),
        options.index(value),
    )


def make_examples(task: str, count: int, seed: int = 0) -> list[Example]:
    """`count` distinct examples of `task`; UserError for an unknown task."""
    if task not in TASKS:
        raise UserError(f"unknown depth task '{task}' (known: {', '.join(TASKS)})")
    rng = random.Random(seed)
    seen: dict[str, Example] = {}
    while len(seen) < count:
        example = _arith(rng)
        seen.setdefault(example.prompt, example)
    return list(seen.values())


def split_examples(task: str, train: int, test: int, seed: int = 0) -> tuple[list, list]:
    """Disjoint (train, held-out) example lists."""
    examples = make_examples(task, train + test, seed)
    return examples[:train], examples[train:]


@torch.no_grad()
def option_scores(model: torch.nn.Module, tokenizer: object, example: Example) -> torch.Tensor:
    """Summed log-likelihood of each option after the prompt (one batched forward pass)."""
    prompt_ids = tokenizer(example.prompt, add_special_tokens=False)["input_ids"]
    rows = [
        prompt_ids + tokenizer(o, add_special_tokens=False)["input_ids"] for o in example.options
    ]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    scores = []
    for i, row in enumerate(rows):
        targets = torch.tensor(row[len(prompt_ids) :])
        positions = torch.arange(len(prompt_ids) - 1, len(row) - 1)
        scores.append(logprobs[i, positions, targets].sum())
    return torch.stack(scores)
