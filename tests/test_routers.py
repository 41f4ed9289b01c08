"""The routing contract and the two no-model routers."""

import pytest

from llm_eff.core import UserError
from routers import RandomRouter, RuleRouter, make_router, parse_router_model, request_text, route


def _req(text: str) -> dict:
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": text}]},
        ],
    }


def test_request_text_joins_string_and_part_contents():
    assert request_text(_req("hello")) == "be brief\nhello"


def test_rule_router_orders_easy_below_hard():
    router = RuleRouter()
    easy = router.score(_req("What is the capital of France?"))
    hard = router.score(
        _req(
            "Explain why this query is slow and optimise it:\n"
            "SELECT * FROM a JOIN b ON a.id = b.id WHERE x > 2 ^ 10"
        )
    )
    assert 0 <= easy < 0.2 < hard <= 1
    assert router.features("```python\ndef f(): pass\n```")["code"] == 1.0
    long = router.score(_req("word " * 4000))
    assert long >= router.w_length  # saturated length signal


def test_rule_router_reads_head_and_tail_of_long_prompts():
    router = RuleRouter()
    filler = "Some plain narrative text without any markers at all. " * 200  # ~11k characters
    assert router.features(filler)["code"] == 0.0 and router.features(filler)["length"] > 0.5
    tail = router.features(filler + "\ndef solve(x):\n    return x ** 2\n")
    head = router.features("Prove that 3 * 4 = 12, step by step.\n" + filler)
    assert tail["code"] == 1.0
    assert head["math"] == 1.0 and head["reasoning"] == 1.0
    middle = router.features(filler + "SELECT * FROM t JOIN u" + filler)
    assert middle["code"] == 0.0  # beyond the searched head and tail
    assert router.features("SELECT name FROM users")["code"] == 1.0


def test_route_applies_threshold_outside_the_router():
    router = RuleRouter()
    request = _req("Prove that the sum of two even numbers is even. Why?")
    score = router.score(request)
    assert route(router, request, score, "strong", "weak").target == "strong"
    assert route(router, request, score + 0.01, "strong", "weak").target == "weak"


def test_random_router_is_seeded_and_uniform():
    a, b = RandomRouter(seed=3), RandomRouter(seed=3)
    draws = [a.score({}) for _ in range(2000)]
    assert draws[:5] == [b.score({}) for _ in range(5)]
    strong_share = sum(d >= 0.7 for d in draws) / len(draws)
    assert 0.25 < strong_share < 0.35


def test_model_name_convention_and_registry():
    assert parse_router_model("router-rules-0.4") == ("rules", 0.4)
    assert parse_router_model("router-my-knn-0.25") == ("my-knn", 0.25)
    assert parse_router_model("router-rules") is None
    assert parse_router_model("gpt-4o") is None
    assert make_router("rules", "r", {"long_tokens": 100}).long_tokens == 100
    with pytest.raises(UserError, match="unknown router kind"):
        make_router("oracle", "x")
    with pytest.raises(UserError, match="bad option"):
        make_router("rules", "x", {"nope": 1})
