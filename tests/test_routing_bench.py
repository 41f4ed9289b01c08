"""Router metrics by hand, the outcome loader, and trained embedding routers round-tripping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evals.metrics.routing import aiq, apgr, cpt, curve
from llm_eff.core import UserError
from routers.outcomes import load_outcomes

# 4 queries: strong right on all but #3, weak right on #0 and #3
STRONG = [True, True, True, False]
WEAK = [True, False, False, True]
ONES, TENTHS = [1.0] * 4, [0.1] * 4


def test_curve_pgr_and_cpt_by_hand():
    scores = [0.1, 0.9, 0.8, 0.2]  # a perfect ranking: #1 and #2 need the strong model
    points = curve(scores, STRONG, WEAK, ONES, TENTHS)
    assert [p.strong_share for p in points] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [round(p.accuracy, 2) for p in points] == [0.5, 0.75, 1.0, 0.75, 0.75]
    # gap = 0.75 - 0.5; PGR at half strong calls = (1.0 - 0.5) / 0.25 = 2
    assert points[2].pgr == pytest.approx(2.0)
    assert points[2].cost == pytest.approx((2 * 1.0 + 2 * 0.1) / 4)
    assert cpt(points, 0.5) == 0.25 and cpt(points, 1.0) == 0.25
    area = np.trapezoid([0, 1, 2, 1, 1], [0, 0.25, 0.5, 0.75, 1.0])
    assert apgr(points) == pytest.approx(area)


def test_random_scores_give_apgr_near_half():
    rng = np.random.default_rng(0)
    n = 4000
    strong, weak = rng.random(n) < 0.8, rng.random(n) < 0.65
    points = curve(rng.random(n).tolist(), strong, weak, [1.0] * n, [0.1] * n)
    assert abs(apgr(points) - 0.5) < 0.05
    assert 0 < aiq(points) <= max(p.accuracy for p in points)


def test_aiq_rewards_reaching_quality_cheaply():
    good = curve([0.1, 0.9, 0.8, 0.2], STRONG, WEAK, ONES, TENTHS)
    bad = curve([0.9, 0.1, 0.2, 0.8], STRONG, WEAK, ONES, TENTHS)
    assert aiq(good) > aiq(bad)


def test_outcome_loader(tmp_path: Path):
    folder = tmp_path / "mmlu"
    folder.mkdir()
    (folder / "a.csv").write_text('prompt,weak,strong\n"q1\nA. x",True,True\nq2,False,True\n')
    (folder / "b.csv").write_text("prompt,weak,strong\nq3,false,false\n")
    excl = tmp_path / "contaminated.jsonl"
    excl.write_text('{"eval_prompt": "q2", "train_prompt": "other"}\n')
    out = load_outcomes(folder, excl)
    assert out.prompts == ["q1\nA. x", "q3"] and out.groups == ["a", "b"]
    assert out.correct == {"weak": [True, False], "strong": [True, False]}
    (folder / "c.csv").write_text("prompt,weak,strong\nq4,maybe,true\n")
    with pytest.raises(UserError, match="c.csv:2"):
        load_outcomes(folder)
    with pytest.raises(UserError, match="no outcome CSV"):
        load_outcomes(tmp_path / "nothing")


def test_trained_routers_save_load_identical(tmp_path: Path):
    from routers.embedding import embed
    from routers.knn import KNNRouter, LogisticRouter, load_router, save_router

    prompts = [
        "What is 2 + 2?",
        "Prove that there are infinitely many primes.",
        "Name a colour.",
        "Derive the gradient of the softmax cross-entropy loss.",
        "Say hello.",
        "Explain the CAP theorem and its trade-offs in depth.",
    ]
    labels = np.array([0, 1, 0, 1, 0, 1], dtype=np.float32)
    vectors = embed(prompts)
    assert vectors.shape == (6, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    probe = ["Prove the triangle inequality.", "What is 3 + 5?"]
    for router in (
        KNNRouter(k=3).fit(prompts, labels),
        LogisticRouter().fit(prompts, labels),
    ):
        folder = save_router(router, tmp_path / router.name)
        loaded = load_router(folder)
        assert type(loaded) is type(router)
        assert [loaded.score(p) for p in probe] == [router.score(p) for p in probe]
        assert router.score(probe[0]) > router.score(probe[1])
    from routers import make_router

    in_proxy = make_router("trained", "mine", {"path": str(tmp_path / "knn")})
    assert in_proxy.name == "mine" and in_proxy.score(probe[0]) == loaded_knn_score(
        tmp_path, probe[0]
    )
    with pytest.raises(UserError, match="not a saved router"):
        load_router(tmp_path / "missing")
    # the length feature: learned mean/std of log length saved with the weights
    logistic = load_router(tmp_path / "logistic")
    assert logistic.length and logistic.weights.shape == (385,)
    assert logistic.length_mean == pytest.approx(np.log1p([len(p) for p in prompts]).mean())
    with pytest.raises(ValueError, match="needs the prompt texts"):
        logistic.score_vectors(vectors)
    plain = LogisticRouter(length=False).fit(prompts, labels)
    assert plain.weights.shape == (384,) and plain.score(probe[0]) > plain.score(probe[1])


def test_soft_gain_labels_rank_by_the_strong_models_gain():
    """Trained on gain labels (ties 0.5), a router puts 'only strong right' prompts first and
    'only weak right' ones last."""
    from routers.knn import LogisticRouter

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 384)).astype(np.float32)
    kind = rng.integers(0, 3, 600)  # 0: only weak right, 1: tie, 2: only strong right
    vectors = centres[kind] + 0.8 * rng.normal(size=(600, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = (kind / 2).astype(np.float32)
    router = LogisticRouter(length=False).fit_vectors(vectors[:400], labels[:400])
    scores = router.score_vectors(vectors[400:])
    held = kind[400:]
    means = [float(scores[held == k].mean()) for k in (0, 1, 2)]
    assert means[0] < means[1] < means[2]


def loaded_knn_score(tmp_path: Path, prompt: str) -> float:
    from routers.knn import load_router

    return load_router(tmp_path / "knn").score(prompt)


@pytest.mark.slow  # a minute: two whole benches (the parts are tested above, in-process)
def test_route_bench_command_on_real_outcomes(tmp_path: Path):
    """`llm-eff route bench` on four real RouteLLM MMLU subjects (two held out)."""
    from .conftest import DATA, cli

    folder = DATA / "routellm" / "mmlu"  # the header and 80 questions of each subject
    out = cli("route", "bench", "--data", str(folder), "--seeds", "2")
    assert out.returncode == 0, out.stderr
    for router in (
        "random",
        "rules",
        "length only",
        "knn (MiniLM)",
        "logistic (MiniLM)",
        "logistic (MiniLM + length)",
        "oracle",
    ):
        assert router in out.stdout
    assert "2 splits" in out.stdout and "±" in out.stdout
    assert "RouteLLM causal LLM, Arena + MMLU labels" in out.stdout
    questions = cli(
        "route", "bench", "--data", str(folder), "--split", "questions", "--label", "cheapest"
    )
    assert questions.returncode == 0, questions.stderr
    assert "held out half the questions" in questions.stdout
    assert "cheapest labels" in questions.stdout
    bad = cli("route", "bench", "--data", str(folder), "--split", "subjects")
    assert bad.returncode == 2 and "unknown split 'subjects'" in bad.stderr
    assert "held out 2 of 4 groups" in out.stdout and "cost-of-pass" in out.stdout
    from llm_eff.core.errors import UserError
    from llm_eff.core.prices import Price
    from routers.bench import run_bench
    from routers.outcomes import load_outcomes

    free = Price(0.0, 0.0, "test")
    with pytest.raises(UserError, match="no column 'nope'"):  # the same check, in-process
        run_bench(load_outcomes(folder), "nope", "gpt-4-1106-preview", free, free)


def test_outcomes_from_run_log_attempts_carry_measured_costs():
    """Run-log attempts become outcomes (first sample, tasks both models answered) whose
    measured dollars price the routing curve: the oracle then reaches the strong pass rate for
    exactly what the strong model spent on the tasks only it solved plus the weak model's
    spend on the rest."""
    from llm_eff.core.prices import Price
    from llm_eff.core.types import Attempt, Cost
    from routers.bench import run_bench
    from routers.outcomes import outcomes_from_attempts

    rows = []
    prompts = {}
    for i in range(40):
        task = f"t{i}"
        prompts[("bench", task)] = f"task {i} " + "long " * (i % 7)
        strong_ok, weak_ok = i % 4 != 3, i % 2 == 0
        rows.append(
            Attempt(task, "strong", "s", passed=strong_ok, cost=Cost(0.01), benchmark="bench")
        )
        rows.append(Attempt(task, "weak", "w", passed=weak_ok, cost=Cost(0.001), benchmark="bench"))
        rows.append(
            Attempt(task, "weak", "w", sample=1, passed=True, cost=Cost(9.0), benchmark="bench")
        )
    rows.append(Attempt("only-strong", "strong", "s", passed=True, benchmark="bench"))
    outcomes = outcomes_from_attempts(rows, prompts, ["strong", "weak"])
    assert len(outcomes.prompts) == 40 and set(outcomes.groups) == {"bench"}
    assert outcomes.costs["weak"] == [0.001] * 40  # sample 1 (9 dollars) is not the answer
    unused = Price(0.0, 0.0, "measured")
    results, facts = run_bench(
        outcomes, "strong", "weak", unused, unused, split="questions", k=5, seeds=3
    )
    assert facts["strong_cost_per_query"] == pytest.approx(0.01)
    oracle = next(r for r in results if r.name == "oracle")
    # the oracle sends only the tasks where the strong model alone is right (i % 4 == 1) to it
    assert oracle.cost_at_strong_accuracy is not None
    assert oracle.cost_at_strong_accuracy < 0.006  # about 1/4 x 0.01 + 3/4 x 0.001
    assert oracle.cost_of_pass_at_strong_accuracy is not None
    with pytest.raises(UserError, match="no attempts of nobody"):
        outcomes_from_attempts(rows, prompts, ["strong", "nobody"])


@pytest.mark.slow  # ~50 s / ~15 s of CPU: opt-in to keep the default run under 10 minutes
def test_route_bench_trains_on_one_outcome_set_and_scores_another(tmp_path: Path):
    """`--test-data`: out-of-domain scoring (two subjects train, two others test); a test set
    without the strong model's column is refused with one clear line."""
    import shutil

    from .conftest import DATA, cli

    subjects = sorted((DATA / "routellm" / "mmlu").glob("*.csv"))
    train, test = tmp_path / "train", tmp_path / "test"
    for folder, files in ((train, subjects[:2]), (test, subjects[2:])):
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
    out = cli("route", "bench", "--data", str(train), "--test-data", str(test))
    assert out.returncode == 0, out.stderr
    assert f"trained on all of {train}, scored on {test}" in out.stdout
    assert "(160 prompts; trained on 160" in out.stdout  # 80 questions per subject file
    assert "logistic (MiniLM)" in out.stdout and "oracle" in out.stdout
    # machine-readable: stdout holds the table alone, every number whole
    import csv

    as_csv = cli(
        "route", "bench", "--data", str(train), "--test-data", str(test), "--format", "csv"
    )
    assert as_csv.returncode == 0, as_csv.stderr
    table = list(csv.DictReader(as_csv.stdout.splitlines()))
    by_name = {row["router"]: row for row in table}
    assert float(by_name["oracle"]["APGR"]) > float(by_name["random"]["APGR"])
    assert "trained on all of" in as_csv.stderr and "trained on all of" not in as_csv.stdout
    other = tmp_path / "other.csv"
    other.write_text("prompt,some-model,mistralai/Mixtral-8x7B-Instruct-v0.1\nq,True,False\n")
    bad = cli("route", "bench", "--data", str(train), "--test-data", str(other))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "the test outcomes have no column 'gpt-4-1106-preview'" in bad.stderr
