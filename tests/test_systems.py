"""System spec strings and the optional vLLM backend's guard."""

import importlib.util

import pytest

from evals.systems import parse_system
from llm_eff.core import UserError


def test_parse_system_variants():
    greedy = parse_system("smollm2-135m")
    assert (greedy.samples, greedy.best_of, greedy.temperature) == (1, 1, 0.0)
    assert greedy.name == "smollm2-135m greedy"
    best = parse_system("smollm2-135m:best-of-4,max_tokens=256")
    assert best.best_of == 4 and best.temperature == 0.8 and best.max_tokens == 256
    assert best.name == "smollm2-135m best-of-4" and best.hash != greedy.hash
    sampled = parse_system("openai/gpt-4o-mini:samples=5,temperature=0.2,name=mini")
    assert (sampled.samples, sampled.temperature, sampled.name) == (5, 0.2, "mini")
    assert parse_system("hf:/models/x:n=2").model == "hf:/models/x"
    assert parse_system("reference").is_reference
    assert parse_system("smollm2-135m").hash == parse_system("smollm2-135m:").hash


@pytest.mark.parametrize(
    "spec, message",
    [
        ("m:bogus=1", "unknown option"),
        ("m:samples=two", "must be a number"),
        ("m:samples=0", ">= 1"),
        ("m:oops", "key=value"),
        (":samples=1", "empty model"),
    ],
)
def test_bad_system_specs(spec: str, message: str):
    with pytest.raises(UserError, match=message):
        parse_system(spec)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_without_extra_is_a_clear_error():
    from llm_eff.backends.vllm_backend import VLLMBackend

    with pytest.raises(UserError, match=r"llm-eff\[vllm\]"):
        VLLMBackend("/nonexistent")
