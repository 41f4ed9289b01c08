"""Routing benchmark on recorded outcomes (e.g. RouteLLM's MMLU data): train routers on some
groups (subjects), score the held-out ones, and compare APGR, CPT(50%), CPT(80%), AIQ, cost at
the strong model's accuracy, cost-of-pass at the CPT(50%) operating point, and decision
latency, against random and oracle routers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class RouterResult:
    """One router's held-out numbers."""

    name: str
    apgr: float
    cpt50: float
    cpt80: float
    aiq: float
    cost_at_strong_accuracy: float | None
    decision_ms: float | None
    cost_of_pass_at_cpt50: float = float("inf")


def split_groups(
    outcomes: Outcomes, train_share: float = 0.5, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Row indices of train and test, split by group so no subject is in both."""
    groups = sorted(set(outcomes.groups))
    if len(groups) < 2:
        raise UserError("need at least two groups (e.g. subjects) to hold some out")
    random.Random(seed).shuffle(groups)
    cut = max(1, min(len(groups) - 1, round(len(groups) * train_share)))
    train_groups = set(groups[:cut])
    train = [i for i, g in enumerate(outcomes.groups) if g in train_groups]
    test = [i for i, g in enumerate(outcomes.groups) if g not in train_groups]
    return train, test


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


def run_bench(
    outcomes: Outcomes,
    strong: str,
    weak: str,
    strong_price: Price,
    weak_price: Price,
    seed: int = 0,
    k: int = 20,
    small_lm: int = 0,
) -> tuple[list[RouterResult], dict[str, float]]:
    """Results per router on the held-out groups, and facts about the split. With `small_lm`
    > 0, the SmolLM2 classifier router is trained too, on that many training prompts (a
    class-balanced sample: it is far slower to train than the embedding routers)."""
    for model in (strong, weak):
        if model not in outcomes.correct:
            raise UserError(f"no column '{model}' (have: {', '.join(outcomes.correct)})")
    train_idx, test_idx = split_groups(outcomes, seed=seed)
    train, test = outcomes.subset(train_idx), outcomes.subset(test_idx)
    labels = np.array(
        [s and not w for s, w in zip(train.correct[strong], train.correct[weak], strict=True)],
        dtype=np.float32,
    )
    if labels.sum() == 0:
        raise UserError(
            "no training prompt where only the strong model was right: nothing to learn"
        )
    train_vec, test_vec = embed(train.prompts), embed(test.prompts)
    s_ok, w_ok = test.correct[strong], test.correct[weak]
    s_cost, w_cost = query_costs(test.prompts, strong_price), query_costs(test.prompts, weak_price)
    knn = KNNRouter(k=k).fit(train_vec, labels)
    logistic = LogisticRouter().fit(train_vec, labels)
    rules, rand = RuleRouter(), RandomRouter(seed=seed)
    length = RuleRouter(name="length", w_length=1.0, w_code=0.0, w_reasoning=0.0, w_math=0.0,
                        w_questions=0.0)  # fmt: skip
    as_request = lambda p: {"messages": [{"role": "user", "content": p}]}  # noqa: E731
    scorers: dict[str, tuple[list[float], Callable[[str], float] | None]] = {
        "random": ([rand.score({}) for _ in test.prompts], lambda p: rand.score({})),
        "rules": (
            [rules.score(as_request(p)) for p in test.prompts],
            lambda p: rules.score(as_request(p)),
        ),
        "rules, length only": (
            [length.score(as_request(p)) for p in test.prompts],
            lambda p: length.score(as_request(p)),
        ),
        "knn (MiniLM)": (knn.score_vectors(test_vec).tolist(), knn.score),
        "logistic (MiniLM)": (logistic.score_vectors(test_vec).tolist(), logistic.score),
        "oracle": ([1.0 if s and not w else 0.0 for s, w in zip(s_ok, w_ok, strict=True)], None),
    }
    if small_lm > 0:
        from routers.slm import SLMRouter

        rng = random.Random(seed)
        positive = [i for i, y in enumerate(labels) if y]
        negative = [i for i, y in enumerate(labels) if not y]
        half = small_lm // 2
        sample = rng.sample(positive, min(half, len(positive)))
        sample += rng.sample(negative, min(small_lm - len(sample), len(negative)))
        slm = SLMRouter(epochs=1, max_length=160, seed=seed).fit(
            [train.prompts[i] for i in sample], labels[sample]
        )
        scorers["slm (SmolLM2 + LoRA)"] = (slm.score_texts(test.prompts).tolist(), slm.score)
    strong_acc = test.accuracy(strong)
    results = []
    for name, (scores, scorer) in scorers.items():
        points = curve(scores, s_ok, w_ok, s_cost, w_cost)
        reaching = [p.cost for p in points if p.accuracy >= strong_acc - 1e-12]
        half = cpt(points, 0.5)
        at_half = next(p for p in points if p.strong_share >= half - 1e-12)
        results.append(
            RouterResult(
                name,
                apgr(points),
                half,
                cpt(points, 0.8),
                aiq(points),
                min(reaching) if reaching else None,
                _latency_ms(scorer, test.prompts) if scorer else None,
                cost_of_pass([at_half.cost], [at_half.accuracy]),
            )
        )
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
    return results, facts
