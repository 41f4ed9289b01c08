"""Monte-Carlo tree search for the cheapest layer plan that keeps or fixes an answer.

A node is a plan; an edit skips one layer, skips two adjacent layers, or repeats one layer
(only layers the plan runs once are edited, and plans stay within 2x the model's depth). Each
node tries a random sample of `width` edits (so the tree deepens instead of listing every edit
at the root); selection follows UCB1. A plan's reward is 1 if the model answers correctly
under it, else 0, minus `length_penalty` x (layers executed / depth). The result is the
best-rewarded correct plan found (the full plan if it is the only correct one; None if no
plan answers correctly).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_eff.depth.plans import EXECUTE, REPEAT, SKIP, full_plan, layers_executed

Plan = tuple[int, ...]


@dataclass
class Node:
    """One plan in the tree with its visit statistics."""

    plan: Plan
    reward: float
    untried: list[tuple[str, int]]
    edits: int
    visits: int = 0
    total: float = 0.0
    children: list[Node] = field(default_factory=list)


def edits_of(plan: Plan) -> list[tuple[str, int]]:
    """Every edit that applies to `plan` (see module docstring)."""
    depth, runs = len(plan), layers_executed(plan)
    out: list[tuple[str, int]] = []
    for i, action in enumerate(plan):
        if action != EXECUTE:
            continue
        if runs > 1:  # a plan always runs at least one layer
            out.append(("skip", i))
        if i + 1 < depth and plan[i + 1] == EXECUTE and runs > 2:
            out.append(("skip2", i))
        if runs + 1 <= 2 * depth:
            out.append(("repeat", i))
    return out


def apply_edit(plan: Plan, edit: tuple[str, int]) -> Plan:
    """`plan` with one edit applied."""
    kind, i = edit
    new = list(plan)
    if kind == "skip":
        new[i] = SKIP
    elif kind == "skip2":
        new[i] = new[i + 1] = SKIP
    else:
        new[i] = REPEAT
    return tuple(new)


@dataclass
class SearchResult:
    """The best correct plan (or None), whether full depth was correct, plans evaluated."""

    plan: Plan | None
    reward: float
    full_correct: bool
    evaluated: int


def search_plan(
    correct: Callable[[Plan], bool],
    depth: int,
    simulations: int = 40,
    width: int = 8,
    max_edits: int = 6,
    length_penalty: float = 0.2,
    c: float = 0.7,
    seed: int = 0,
) -> SearchResult:
    """MCTS over plans for one example; `correct(plan)` runs the model under the plan."""
    rng = random.Random(seed)
    cache: dict[Plan, bool] = {}

    def reward(plan: Plan) -> float:
        if plan not in cache:
            cache[plan] = bool(correct(plan))
        return float(cache[plan]) - length_penalty * layers_executed(plan) / depth

    def node(plan: Plan, edits: int) -> Node:
        options = edits_of(plan)
        return Node(plan, reward(plan), rng.sample(options, min(width, len(options))), edits)

    root = node(tuple(full_plan(depth)), 0)
    for _ in range(simulations):
        path, current = [root], root
        while not current.untried and current.children and current.edits < max_edits:
            parent = current
            current = max(
                parent.children,
                key=lambda n: (
                    n.total / n.visits + c * math.sqrt(math.log(parent.visits) / n.visits)
                ),
            )
            path.append(current)
        if current.untried and current.edits < max_edits:
            edit = current.untried.pop()
            child = node(apply_edit(current.plan, edit), current.edits + 1)
            current.children.append(child)
            path.append(child)
            current = child
        for n in path:
            n.visits += 1
            n.total += current.reward
    good = [p for p, ok in cache.items() if ok]
    best = max(good, key=lambda p: (reward(p), -layers_executed(p)), default=None)
    return SearchResult(best, reward(best) if best else 0.0, cache[root.plan], len(cache))
