"""Routed text-to-SQL (EllieSQL): a router picks, per question, the cheapest pipeline that it
expects to answer correctly.

Targets rise in cost: basic, intermediate, advanced (`pipelines.py`). A question's label is the
cheapest pipeline that passed it, as a score in [0, 1] (0, 0.5, 1); questions that no pipeline
passed teach nothing about routing and are left out. Any `Router` routes (the one contract:
a score in [0, 1]); its scores are cut by two thresholds calibrated on the training questions so
that each pipeline gets the share of questions it was the label for.

Evaluation is offline and cross-validated by database: the databases are dealt into k folds; for
each fold a router is trained on the other folds' questions and routes this fold's. The routed
attempt is the chosen pipeline's recorded attempt (pipelines decode greedily, so a rerun gives
the same answer), with the router's measured decision time added to its latency and priced at
the hardware rate. Router kinds:

    rules     the feature rule router on the question and its schema (no training)
    knn       similarity-weighted label of the nearest training questions (MiniLM)
    logistic  logistic regression on MiniLM embeddings (does the question need more than basic?)
    slm, dpo  SmolLM2 with LoRA, as a classifier or tuned with DPO (same question; routers.slm)
    random    a uniformly random pipeline (needs no labels)
    oracle    the cheapest pipeline that passed (the ceiling; it peeks at the outcomes)
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from evals.systems import SystemKind, SystemSpec
from llm_eff.core.errors import UserError
from llm_eff.core.types import Attempt, Cost, Task
from llm_eff.models.embedded import NAME as EMBEDDED

TARGETS = ("basic", "intermediate", "advanced")
KINDS = ("rules", "knn", "logistic", "slm", "dpo", "random", "oracle")


def labels_from(
    recorded: dict[str, dict[str, Attempt]], task_ids: Sequence[str]
) -> dict[str, float]:
    """task id -> cheapest passing pipeline as 0, 0.5 or 1 (tasks none passed are left out)."""
    labels = {}
    for task_id in task_ids:
        for i, target in enumerate(TARGETS):
            attempt = recorded[target].get(task_id)
            if attempt is not None and attempt.passed:
                labels[task_id] = i / (len(TARGETS) - 1)
                break
    return labels


def database_folds(tasks: Sequence[Task], folds: int, seed: int = 0) -> list[list[Task]]:
    """Tasks dealt into `folds` groups by database (metadata 'category'), none split."""
    dbs = sorted({t.metadata.get("category", "") for t in tasks})
    if len(dbs) < 2:
        raise UserError("routing by database needs questions from at least two databases")
    random.Random(seed).shuffle(dbs)
    folds = min(folds, len(dbs))
    fold_of = {db: i % folds for i, db in enumerate(dbs)}
    out: list[list[Task]] = [[] for _ in range(folds)]
    for t in tasks:
        out[fold_of[t.metadata.get("category", "")]].append(t)
    return out


def calibrate_cuts(scores: Sequence[float], labels: Sequence[float]) -> tuple[float, float]:
    """Two thresholds giving each pipeline the share of `scores` its label had."""
    values, labels = np.sort(np.asarray(scores, float)), np.asarray(labels, float)
    shares = np.cumsum([np.mean(labels == i / (len(TARGETS) - 1)) for i in range(len(TARGETS))])
    cut = lambda share: float(values[min(int(round(share * len(values))), len(values) - 1)])  # noqa: E731
    first = cut(shares[0]) if shares[0] < 1 else float("inf")
    second = cut(shares[1]) if shares[1] < 1 else float("inf")
    return first, max(first, second)


def pick(score: float, cuts: tuple[float, float]) -> str:
    """The pipeline a score lands on."""
    return TARGETS[0] if score < cuts[0] else TARGETS[1] if score < cuts[1] else TARGETS[2]


@dataclass
class Decision:
    """Where one question went and what deciding took."""

    task: Task
    target: str
    score: float
    seconds: float


def _question(task: Task) -> str:
    """What the embedding and small-LM routers read: the question alone (no schema)."""
    return task.metadata.get("question", task.prompt)


def _request(task: Task) -> dict:
    return {"messages": [{"role": "user", "content": task.prompt}]}


def _scorer(
    kind: str, train: list[Task], labels: list[float], seed: int
) -> Callable[[Task], float]:
    """A function task -> score in [0, 1] for router `kind`, trained on `train`."""
    if kind == "rules":
        from routers.rules import RuleRouter

        rules = RuleRouter()
        return lambda task: rules.score(_request(task))
    if kind == "random":
        rng = random.Random(seed)
        return lambda task: rng.random()
    from routers.registry import trainable_router

    texts = [_question(t) for t in train]
    y = np.asarray(labels, np.float32)
    if kind == "knn":
        router = trainable_router(kind).fit(texts, y)
    else:  # logistic, slm, dpo: does the question need more than the basic pipeline?
        binary = (y > 0).astype(np.float32)
        if len(set(binary.tolist())) < 2:  # one class only: every question gets that target
            return lambda task: float(binary[0])
        options = {"seed": seed} if kind in ("slm", "dpo") else {}
        router = trainable_router(kind, **options).fit(texts, binary)
    return lambda task: float(router.score(_question(task)))


def route_offline(
    kind: str,
    tasks: Sequence[Task],
    recorded: dict[str, dict[str, Attempt]],
    folds: int = 5,
    seed: int = 0,
) -> list[Decision]:
    """Cross-validated routing decisions by database for every task (see module docstring)."""
    missing = [t.id for t in tasks if any(t.id not in recorded[p] for p in TARGETS)]
    if missing:
        raise UserError(
            f"no recorded pipeline attempts for {len(missing)} task(s), e.g. {missing[0]}"
        )
    labels = labels_from(recorded, [t.id for t in tasks])
    if kind not in ("oracle", "random") and not labels:
        raise UserError("no pipeline passed any question: there is nothing to learn a route from")
    decisions: list[Decision] = []
    for number, fold in enumerate(database_folds(tasks, folds, seed)):
        held = {t.id for t in fold}
        if kind == "oracle":
            for t in fold:
                target = next((p for p in TARGETS if recorded[p][t.id].passed), TARGETS[0])
                decisions.append(Decision(t, target, labels.get(t.id, 0.0), 0.0))
            continue
        train = [t for t in tasks if t.id not in held and t.id in labels]
        y = [labels[t.id] for t in train]
        if kind == "random":  # each pipeline equally likely
            score, cuts = _scorer(kind, train, y, seed * 1000 + number), (1 / 3, 2 / 3)
        elif not train:
            raise UserError("a fold has no labelled training questions: use fewer folds")
        else:
            score = _scorer(kind, train, y, seed * 1000 + number)
            cuts = calibrate_cuts([score(t) for t in train], y)
        for t in fold:
            start = time.perf_counter()
            value = score(t)
            decisions.append(Decision(t, pick(value, cuts), value, time.perf_counter() - start))
    order = {t.id: i for i, t in enumerate(tasks)}
    return sorted(decisions, key=lambda d: order[d.task.id])


def routed_attempt(
    decision: Decision, chosen: Attempt, system: str, system_hash: str, dollars_per_hour: float
) -> Attempt:
    """The chosen pipeline's attempt, renamed to the routed system, with the router's time added."""
    usage = replace(chosen.usage, latency_s=(chosen.usage.latency_s or 0.0) + decision.seconds)
    router_cost = Cost(dollars_per_hour * decision.seconds / 3600, "router (hardware time)")
    return replace(
        chosen,
        system=system,
        system_hash=system_hash,
        usage=usage,
        cost=chosen.cost + router_cost,
        details={
            **chosen.details,
            "routed_to": decision.target,
            "router_score": decision.score,
            "decision_ms": decision.seconds * 1000,
        },
    )


def _check(system: SystemSpec) -> SystemSpec:
    router = system.model.removeprefix("routed:")
    if router not in KINDS:
        raise UserError(
            f"system '{system.model}': unknown router '{router}' (known: {', '.join(KINDS)})"
        )
    if system.samples > 1 or system.best_of > 1 or system.pipeline:
        raise UserError(
            f"system '{system.model}': a routed system takes no samples/best_of/pipeline"
        )
    return system


def _folds(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 2:
        raise ValueError("must be an integer >= 2")
    return int(raw)


def targets(system: SystemSpec) -> list[SystemSpec]:
    """The pipeline systems a routed system chooses between (same model and decoding)."""
    base = system.extra.get("base", EMBEDDED)
    return [
        SystemSpec(model=base, max_tokens=system.max_tokens, api_base=system.api_base, pipeline=p)
        for p in TARGETS
    ]


def _fits(system: SystemSpec, benchmark: Any) -> None:
    if benchmark.solve is None:
        raise UserError(
            f"'{system.name}' routes between pipelines, and {benchmark.name} has none "
            "(text-to-SQL benchmarks such as spider-dev do)"
        )


def _replay(
    benchmark: Any, system: SystemSpec, tasks: list[Task], recorded: list[Attempt], options: Any
) -> list[Attempt]:
    """The routed attempts, from the pipelines' recorded greedy attempts."""
    hashes = {spec.hash: spec.pipeline for spec in targets(system)}
    by_target: dict[str, dict[str, Attempt]] = {p: {} for p in TARGETS}
    for a in recorded:
        if a.sample == 0 and a.system_hash in hashes:
            by_target[hashes[a.system_hash]][a.task_id] = a
    decisions = route_offline(
        system.model.removeprefix("routed:"),
        tasks,
        by_target,
        system.extra.get("folds", 5),
        options.seed,
    )
    return [
        routed_attempt(
            d,
            by_target[d.target][d.task.id],
            system.name,
            system.hash,
            options.hardware_dollars_per_hour,
        )
        for d in decisions
    ]


SYSTEM_KIND = SystemKind(
    "routed",
    f"routed:ROUTER[:base=MODEL,folds=5] picks Spider's pipeline per question ({', '.join(KINDS)}),"
    " cross-validated by database from the pipelines' attempts",
    options={"base": str, "folds": _folds},
    check=_check,
    fits=_fits,
    models=lambda system: [system.extra.get("base", EMBEDDED)],
    steps=lambda system: [*targets(system), system],
    replay=_replay,
)
