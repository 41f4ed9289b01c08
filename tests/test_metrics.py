"""Metric functions against hand-computed values and edge cases."""

import math

import pytest

from evals.metrics import (
    accuracy,
    cost_of_pass,
    cost_of_pass_ci,
    frontier_cost_of_pass,
    mean_pass_at_k,
    mean_tokens,
    pass_at_k,
    percentile,
    tep,
)


def test_pass_at_k_hand_computed():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 5) == 1.0
    assert pass_at_k(4, 2, 3) == 1.0  # any 3 of 4 include a pass


def test_pass_at_k_more_samples_needed_than_drawn():
    assert pass_at_k(2, 1, 3) is None
    assert mean_pass_at_k([(2, 1), (5, 1)], 3) == pytest.approx(
        1 - math.comb(4, 3) / math.comb(5, 3)
    )
    assert mean_pass_at_k([(2, 1)], 3) is None
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_accuracy_and_percentile():
    assert accuracy([True, False, True, True]) == 0.75
    assert accuracy([]) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert math.isnan(percentile([], 50))


def test_cost_of_pass_hand_computed():
    # mean cost 1.0, success rate 1/4 -> 4.0 per correct answer
    assert cost_of_pass([1, 1, 1, 1], [True, False, False, False]) == 4.0
    assert cost_of_pass([0.2, 0.4], [True, True]) == pytest.approx(0.3)


def test_cost_of_pass_no_success_is_infinite():
    assert cost_of_pass([1.0, 2.0], [False, False]) == math.inf
    ci = cost_of_pass_ci([[(1.0, False)], [(1.0, False)]])
    assert ci.value == math.inf and ci.low == math.inf


def test_cost_of_pass_ci_brackets_value_and_single_task():
    tasks = [[(1.0, i % 3 == 0)] for i in range(30)]
    ci = cost_of_pass_ci(tasks, resamples=500, seed=1)
    assert ci.low <= ci.value <= ci.high
    assert ci.low < ci.high
    single = cost_of_pass_ci([[(2.0, True), (2.0, False)]])
    assert single.value == single.low == single.high == 4.0


def test_frontier_with_human_expert():
    assert frontier_cost_of_pass({"a": 3.0, "b": 1.5}) == ("b", 1.5)
    assert frontier_cost_of_pass({"a": 3.0}, human_expert_cost=2.0) == ("human expert", 2.0)
    assert frontier_cost_of_pass({"only": math.inf}) == ("only", math.inf)
    with pytest.raises(ValueError):
        frontier_cost_of_pass({})


def test_tep_trade_off_value():
    # (0.1 / 0.5) / (50 / 100) = 0.4
    t = tep(0.6, 150, 0.5, 100)
    assert t.value == pytest.approx(0.4) and t.verdict == "trade-off"


def test_tep_dominance_rule():
    cheaper_better = tep(0.6, 80, 0.5, 100)
    assert cheaper_better.verdict == "dominates"
    assert cheaper_better.value < 0  # the number alone would look bad
    assert "dominates" in cheaper_better.describe()
    assert tep(0.4, 120, 0.5, 100).verdict == "dominated"
    assert tep(0.5, 100, 0.5, 100).verdict == "equal"
    assert tep(0.5, 80, 0.5, 100).verdict == "dominates"
    assert tep(0.7, 100, 0.5, 100).value == math.inf


def test_mean_tokens_weights_completion():
    assert mean_tokens([(10, 5), (20, 15)]) == 25.0
    assert mean_tokens([(10, 5)], completion_weight=2.0) == 20.0
