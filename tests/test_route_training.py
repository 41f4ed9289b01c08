"""Router training labels from run logs, threshold calibration, and the `route` commands."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from llm_eff.core import Attempt, UserError
from routers.training import calibrate_threshold, routing_labels

from .conftest import SHARED_DATA, cli


def _a(task: str, system: str, passed: bool) -> Attempt:
    return Attempt(task_id=task, system=system, system_hash=system, passed=passed)


def test_labels_are_the_cheapest_passing_target():
    attempts = [
        _a("1", "weak", True),
        _a("1", "strong", True),
        _a("2", "weak", False),
        _a("2", "strong", True),
        _a("3", "weak", False),
        _a("3", "strong", False),
        _a("4", "weak", True),
        _a("4", "strong", False),
    ]
    assert routing_labels(attempts, "strong", "weak") == {"1": 0, "2": 1, "4": 0}
    # gain: strong only 1, weak only 0, a tie (both or neither) 0.5
    gains = routing_labels(attempts, "strong", "weak", "gain")
    assert gains == {"1": 0.5, "2": 1.0, "3": 0.5, "4": 0.0}
    with pytest.raises(UserError, match="unknown label kind"):
        routing_labels(attempts, "strong", "weak", "cost")
    with pytest.raises(UserError, match="no task was passed"):
        routing_labels([_a("1", "weak", False), _a("1", "strong", False)], "strong", "weak")
    with pytest.raises(UserError, match="no system named 'big'"):
        routing_labels(attempts, "big", "weak")


def test_calibrate_threshold_on_continuous_scores():
    rng = np.random.default_rng(1)
    calib, held = rng.beta(2, 5, 20_000), rng.beta(2, 5, 20_000)
    for share in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0):
        threshold = calibrate_threshold(calib.tolist(), share)
        assert abs(float((held >= threshold).mean()) - share) <= 0.02
    with pytest.raises(UserError):
        calibrate_threshold([], 0.5)


@pytest.mark.slow
def test_calibration_hits_share_on_held_out_prompts():
    """Trained routers on all RouteLLM MMLU prompts: calibrate on one third, check another."""
    from routers.embedding import embed
    from routers.knn import KNNRouter, LogisticRouter
    from routers.outcomes import load_outcomes

    source = SHARED_DATA / "routellm" / "mmlu"
    if not source.is_dir():
        pytest.skip(f"needs all 57 RouteLLM MMLU outcome files at {source} (tests/data has 4)")
    data = load_outcomes(source)
    order = list(range(len(data.prompts)))
    random.Random(0).shuffle(order)
    third = len(order) // 3
    train, calib, held = order[:third], order[third : 2 * third], order[2 * third :]
    vectors = embed(data.prompts)
    labels = np.array(
        [
            s and not w
            for s, w in zip(
                data.correct["gpt-4-1106-preview"],
                data.correct["mistralai/Mixtral-8x7B-Instruct-v0.1"],
                strict=True,
            )
        ],
        dtype=np.float32,
    )
    texts = {
        name: [data.prompts[i] for i in rows]
        for name, rows in (("train", train), ("calib", calib), ("held", held))
    }
    for router in (
        LogisticRouter().fit_vectors(vectors[train], labels[train], texts["train"]),
        KNNRouter(k=15).fit_vectors(vectors[train], labels[train]),
    ):
        for share in (0.2, 0.5):
            calib_scores = router.score_vectors(vectors[calib], texts["calib"])
            threshold = calibrate_threshold(calib_scores.tolist(), share)
            held_scores = router.score_vectors(vectors[held], texts["held"])
            held_share = float((held_scores >= threshold).mean())
            assert abs(held_share - share) <= 0.02, (router.name, share, held_share)


@pytest.mark.slow  # 30 s of CLI training; labels, calibration and routers are tested in-process
def test_route_train_and_calibrate_commands(tmp_path: Path, humaneval_file: Path):
    run = tmp_path / "run.jsonl"
    bench = f"humaneval:{humaneval_file}"
    assert (
        cli(
            "eval",
            "--bench",
            bench,
            "--system",
            "reference",
            "--system",
            "tiny-llama:max_tokens=4",
            "--run",
            str(run),
        ).returncode
        == 0
    )
    out = tmp_path / "router"

    def train(strong: str, weak: str, *extra: str):
        return cli(
            "route",
            "train",
            "--runs",
            str(run),
            "--bench",
            bench,
            "--strong",
            strong,
            "--weak",
            weak,
            "--out",
            str(out),
            *extra,
        )

    trained = train("reference", "tiny-llama greedy", "--router", "logistic")
    assert trained.returncode == 0, trained.stderr
    assert "trained logistic on 3 tasks (gain labels; 3 passed only by reference)" in trained.stdout
    calibrated = cli(
        "route", "calibrate", "--router", str(out), "--bench", bench, "--strong-share", "1.0"
    )
    assert calibrated.returncode == 0 and "100.0% of 3 prompts go strong" in calibrated.stdout
    nothing = train("tiny-llama greedy", "tiny-llama greedy")
    assert nothing.returncode == 2 and "no task was passed" in nothing.stderr
    unknown = train("reference", "tiny-llama greedy", "--router", "bert")
    assert unknown.returncode == 2 and "unknown router 'bert'" in unknown.stderr
    soft = train("reference", "tiny-llama greedy", "--router", "slm", "--label", "gain")
    assert soft.returncode == 2 and "use --label cheapest" in soft.stderr


def test_small_lm_routers_train_save_load_and_decide_identically(tmp_path: Path):
    from routers.knn import load_router, save_router
    from routers.slm import DPORouter, SLMRouter

    easy = [f"what is {i} plus {i}?" for i in range(10)]
    hard = [f"prove the theorem on compact manifolds, part {i}, in detail" for i in range(10)]
    texts, labels = easy + hard, np.array([0] * 10 + [1] * 10)
    slm = SLMRouter(base="tiny-llama", epochs=8, lr=3e-3).fit(texts, labels)
    scores = slm.score_texts(texts)
    assert scores[10:].min() > scores[:10].max()  # it separates what it was taught
    dpo = DPORouter(base="tiny-llama", epochs=2, lr=1e-3, batch_size=4)
    dpo.fit(texts, labels)  # trl works in a temporary folder, gone once fit returns
    for router, folder in ((slm, tmp_path / "slm"), (dpo, tmp_path / "dpo")):
        save_router(router, folder)
        loaded = load_router(folder)
        assert type(loaded) is type(router)
        assert np.array_equal(loaded.score_texts(texts), router.score_texts(texts))
        request = {"messages": [{"role": "user", "content": hard[0]}]}
        assert loaded.score(request) == router.score(request)
    with pytest.raises(UserError, match="one class only"):
        SLMRouter(base="tiny-llama").fit(easy, np.zeros(10))
