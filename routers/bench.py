"""Routing benchmark on recorded outcomes (e.g. RouteLLM's MMLU data): train routers on some
groups (subjects), score the held-out ones, and compare APGR, CPT(50%), CPT(80%), AIQ, cost at
the strong model's accuracy, cost-of-pass at the CPT(50%) operating point, and decision
latency, against random and oracle routers.

Several seeds give several splits; every number is then a mean with its standard deviation
across them. `split="questions"` holds out random questions instead of whole groups, the
setting of RouteLLM's MMLU-augmented routers (trained on labelled questions of the same
subjects); `PUBLISHED` holds their figures for comparison.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from evals.metrics.cost_of_pass import cost_of_pass
from evals.metrics.routing import aiq, apgr, cpt, curve
from llm_eff.core.errors import UserError
from llm_eff.core.prices import Price
from llm_eff.core.types import Usage
from routers.embedding import embed
from routers.knn import KNNRouter, LogisticRouter
from routers.outcomes import Outcomes
from routers.random_router import RandomRouter
from routers.rules import RuleRouter
from routers.training import check_label_kind, gain_label, label_value

# RouteLLM's published MMLU figures (GPT-4-1106 vs Mixtral-8x7B; lmsys.org blog, 2024-07-01,
# Figure 4, and arXiv 2406.18665): routers trained on Chatbot Arena preferences alone were
# near random; with about 1,500 golden-label MMLU validation questions (the same 57 subjects)
# added, the best router (causal LLM) reached 50% of the gap with about 30% fewer GPT-4 calls
# than random, i.e. CPT(50%) near 35% against random's 50%.
PUBLISHED = (
    ("RouteLLM routers, Arena data only", "about 50% (near random)"),
    ("RouteLLM causal LLM, Arena + MMLU labels", "about 35% (30% below random)"),
)


@dataclass
class RouterResult:
    """One router's held-out numbers: means over the seeds, with the APGR's spread."""

    name: str
    apgr: float
    cpt50: float
    cpt80: float
    aiq: float
    cost_at_strong_accuracy: float | None
    decision_ms: float | None
    cost_of_pass_at_cpt50: float = float("inf")
    apgr_runs: tuple[float, ...] = ()
    cost_of_pass_at_strong_accuracy: float | None = None

    @property
    def apgr_std(self) -> float:
        """Standard deviation of the APGR over the seeds (0 for one)."""
        return float(np.std(self.apgr_runs)) if self.apgr_runs else 0.0


class _Run(NamedTuple):
    """One router's numbers on one split."""

    apgr: float
    cpt50: float
    cpt80: float
    aiq: float
    cost_at_strong_accuracy: float | None
    cost_of_pass_at_cpt50: float
    cost_of_pass_at_strong_accuracy: float | None


def split_groups(
    outcomes: Outcomes, train_share: float = 0.5, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Row indices of train and test, split by group so no subject is in both."""
    groups = sorted(set(outcomes.groups))
    if len(groups) < 2:
        raise UserError("need at least two groups (e.g. subjects) to hold some out")
    random.Random(seed).shuffle(groups)
    train_groups = set(groups[: _cut(len(groups), train_share)])
    train = [i for i, g in enumerate(outcomes.groups) if g in train_groups]
    test = [i for i, g in enumerate(outcomes.groups) if g not in train_groups]
    return train, test


def split_questions(
    outcomes: Outcomes, train_share: float = 0.5, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Row indices of train and test, questions drawn at random (groups seen in both)."""
    rows = list(range(len(outcomes.prompts)))
    random.Random(seed).shuffle(rows)
    cut = _cut(len(rows), train_share)
    return sorted(rows[:cut]), sorted(rows[cut:])


def _cut(n: int, train_share: float) -> int:
    """How many of `n` shuffled items go to training: the share, leaving one on each side."""
    return max(1, min(n - 1, round(n * train_share)))


SPLITS = {"groups": split_groups, "questions": split_questions}


def query_costs(prompts: list[str], price: Price, completion_tokens: int = 1) -> list[float]:
    """$ per query: prompt tokens estimated as characters / 4, plus the answer tokens."""
    return [
        price.cost(
            Usage(prompt_tokens=max(1, len(p) // 4), completion_tokens=completion_tokens)
        ).dollars
        for p in prompts
    ]


def _latency_ms(score: Callable[[str], float], prompts: list[str]) -> float:
    score(prompts[0])  # warm-up
    times = []
    for p in prompts[:50]:
        start = time.perf_counter()
        score(p)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def _labels(strong_ok: list[bool], weak_ok: list[bool], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows to train on, labels): `routers.training`'s label kinds on outcome vectors."""
    check_label_kind(kind)
    values = [label_value(kind, s, w) for s, w in zip(strong_ok, weak_ok, strict=True)]
    rows = np.array([i for i, y in enumerate(values) if y is not None], dtype=int)
    return rows, np.array([values[i] for i in rows], np.float32)


Scorers = dict[str, tuple[list[float], Callable[[str], float] | None]]


def _scorers(
    train: Outcomes,
    test: Outcomes,
    vectors: tuple[np.ndarray, np.ndarray],
    strong: str,
    weak: str,
    seed: int,
    k: int,
    label: str,
    small_lm: int,
) -> Scorers:
    """Each router's scores on the test prompts, and a one-prompt scorer for its latency."""
    train_vec, test_vec = vectors
    rows, y = _labels(train.correct[strong], train.correct[weak], label)
    if not (y > 0.5).any():
        raise UserError(
            "no training prompt where only the strong model was right: nothing to learn"
        )
    texts = [train.prompts[i] for i in rows]
    knn = KNNRouter(k=k).fit_vectors(train_vec[rows], y)
    logistic = LogisticRouter(length=False).fit_vectors(train_vec[rows], y)
    with_length = LogisticRouter().fit_vectors(train_vec[rows], y, texts)
    rules, rand = RuleRouter(), RandomRouter(seed=seed)
    length = RuleRouter(
        name="length", w_length=1.0, w_code=0.0, w_reasoning=0.0, w_math=0.0, w_questions=0.0
    )
    s_ok, w_ok = test.correct[strong], test.correct[weak]
    scorers: Scorers = {
        "random": ([rand.score({}) for _ in test.prompts], lambda p: rand.score({})),
        "rules": ([rules.score(p) for p in test.prompts], rules.score),
        "rules, length only": ([length.score(p) for p in test.prompts], length.score),
        "knn (MiniLM)": (knn.score_vectors(test_vec).tolist(), knn.score),
        "logistic (MiniLM)": (logistic.score_vectors(test_vec).tolist(), logistic.score),
        "logistic (MiniLM + length)": (
            with_length.score_vectors(test_vec, test.prompts).tolist(),
            with_length.score,
        ),
        # the oracle sends prompts only the strong model gets right first, ties next, and the
        # ones only the weak model gets right last
        "oracle": ([gain_label(s, w) for s, w in zip(s_ok, w_ok, strict=True)], None),
    }
    if small_lm > 0:
        from routers.slm import DPORouter, SLMRouter

        binary = np.array(
            [s and not w for s, w in zip(train.correct[strong], train.correct[weak], strict=True)],
            np.float32,
        )
        rng = random.Random(seed)
        positive = [i for i, v in enumerate(binary) if v]
        negative = [i for i, v in enumerate(binary) if not v]
        half = small_lm // 2
        sample = rng.sample(positive, min(half, len(positive)))
        sample += rng.sample(negative, min(small_lm - len(sample), len(negative)))
        sampled = [train.prompts[i] for i in sample]
        slm = SLMRouter(epochs=1, max_length=160, seed=seed).fit(sampled, binary[sample])
        scorers["slm (SmolLM2 + LoRA)"] = (slm.score_texts(test.prompts).tolist(), slm.score)
        dpo = DPORouter(epochs=1, max_length=160, seed=seed).fit(sampled, binary[sample])
        scorers["dpo (SmolLM2 + LoRA, trl)"] = (dpo.score_texts(test.prompts).tolist(), dpo.score)
    return scorers


def run_bench(
    outcomes: Outcomes,
    strong: str,
    weak: str,
    strong_price: Price,
    weak_price: Price,
    seed: int = 0,
    k: int = 100,
    small_lm: int = 0,
    seeds: int = 1,
    split: str = "groups",
    label: str = "gain",
    target_share: float = 1.0,
    test_outcomes: Outcomes | None = None,
) -> tuple[list[RouterResult], dict[str, float]]:
    """Results per router on the held-out part of `seeds` splits (seed, seed + 1, ...), and
    facts about the first split. Learned routers fit `label` labels (`routers.training`).
    Queries cost what `outcomes.costs` measured, else an estimate from the prices; the "at
    strong accuracy" numbers are for the cheapest point reaching `target_share` of it. With
    `test_outcomes`, routers train on all of `outcomes` and are scored on all of those
    (out-of-domain evaluation; `split` is then unused and seeds vary only the random parts).
    With `small_lm` > 0, the SmolLM2 classifier and DPO routers are trained too, on that many
    training prompts (a class-balanced sample: they are far slower to train than the embedding
    routers)."""
    for model in (strong, weak):
        if model not in outcomes.correct:
            raise UserError(f"no column '{model}' (have: {', '.join(outcomes.correct)})")
    splitter = SPLITS.get(split)
    if test_outcomes is not None:
        trained = len(outcomes.prompts)
        outcomes = outcomes.then(test_outcomes, [strong, weak])
        rows = list(range(len(outcomes.prompts)))

        def splitter(_: Outcomes, seed: int = 0) -> tuple[list[int], list[int]]:
            return rows[:trained], rows[trained:]

    if splitter is None:
        raise UserError(f"unknown split '{split}' (use {' or '.join(SPLITS)})")
    if seeds < 1:
        raise UserError("seeds must be at least 1")
    vectors = embed(outcomes.prompts)
    runs: dict[str, list[_Run]] = {}
    latency: dict[str, float | None] = {}
    facts: dict[str, float] = {}
    for run in range(seeds):
        train_idx, test_idx = splitter(outcomes, seed=seed + run)
        train, test = outcomes.subset(train_idx), outcomes.subset(test_idx)
        scorers = _scorers(
            train,
            test,
            (vectors[train_idx], vectors[test_idx]),
            strong,
            weak,
            seed + run,
            k,
            label,
            small_lm,
        )
        s_ok, w_ok = test.correct[strong], test.correct[weak]
        s_cost = test.costs.get(strong) or query_costs(test.prompts, strong_price)
        w_cost = test.costs.get(weak) or query_costs(test.prompts, weak_price)
        strong_acc = test.accuracy(strong)
        target = strong_acc * target_share
        for name, (scores, scorer) in scorers.items():
            points = curve(scores, s_ok, w_ok, s_cost, w_cost)
            reaching = [p for p in points if p.accuracy >= target - 1e-12]
            cheapest = min(reaching, key=lambda p: p.cost) if reaching else None
            half = cpt(points, 0.5)
            at_half = next(p for p in points if p.strong_share >= half - 1e-12)
            runs.setdefault(name, []).append(
                _Run(
                    apgr(points),
                    half,
                    cpt(points, 0.8),
                    aiq(points),
                    cheapest.cost if cheapest else None,
                    cost_of_pass([at_half.cost], [at_half.accuracy]),
                    cost_of_pass([cheapest.cost], [cheapest.accuracy]) if cheapest else None,
                )
            )
            if run == 0:
                latency[name] = _latency_ms(scorer, test.prompts) if scorer else None
        if run == 0:
            facts = {
                "train_prompts": len(train_idx),
                "test_prompts": len(test_idx),
                "train_groups": len(set(train.groups)),
                "test_groups": len(set(test.groups)),
                "strong_accuracy": strong_acc,
                "weak_accuracy": test.accuracy(weak),
                "strong_cost_per_query": float(np.mean(s_cost)),
                "weak_cost_per_query": float(np.mean(w_cost)),
            }
    return [_summary(name, rows, latency[name]) for name, rows in runs.items()], facts


def _summary(name: str, runs: list[_Run], decision_ms: float | None) -> RouterResult:
    """Means over the seeds' results (the cost at strong accuracy over the seeds reaching it)."""
    reached = [r.cost_at_strong_accuracy for r in runs if r.cost_at_strong_accuracy is not None]
    passes = [r.cost_of_pass_at_strong_accuracy for r in runs]
    known = [c for c in passes if c is not None]
    return RouterResult(
        name,
        float(np.mean([r.apgr for r in runs])),
        float(np.mean([r.cpt50 for r in runs])),
        float(np.mean([r.cpt80 for r in runs])),
        float(np.mean([r.aiq for r in runs])),
        float(np.mean(reached)) if reached else None,
        decision_ms,
        float(np.mean([r.cost_of_pass_at_cpt50 for r in runs])),
        tuple(r.apgr for r in runs),
        float(np.mean(known)) if known and len(known) == len(passes) else None,
    )
