"""Stable local prices: a model's throughput calibrated once per machine prices every later
generation by its tokens alone; without a calibration, prices follow each batch's wall time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from llm_eff.backends import GenerationConfig
from llm_eff.backends.base import user_chat
from llm_eff.backends.calibration import (
    calibrate,
    find_calibration,
    machine_id,
    save_calibration,
)
from llm_eff.backends.transformers_backend import TransformersBackend
from llm_eff.models import parse_model

from .conftest import cli


def test_calibrated_prices_follow_tokens_not_wall_time(tiny_model, tmp_path: Path, monkeypatch):
    """Calibrate the tiny model, store it, find it again; a backend holding it prices each
    answer at exactly prompt x prefill price + completion x decode price, so two runs with the
    same tokens cost the same whatever their wall time; a calibration of another machine is
    never used."""
    monkeypatch.setenv("LLM_EFF_CACHE", str(tmp_path))
    model, tok = tiny_model
    ref = parse_model("tiny-llama")
    wall_priced = TransformersBackend(ref, batch_size=2, model=model, tokenizer=tok)
    found = calibrate(wall_priced, "tiny-llama", "transformers", 2, rounds=2, new_tokens=6)
    assert found.prefill_tokens_per_s > 0 and found.decode_tokens_per_s > 0
    assert found.machine == machine_id() and found.rounds == 2
    assert find_calibration("tiny-llama", "transformers", 2) is None
    save_calibration(found)
    assert find_calibration("tiny-llama", "transformers", 2) == found
    assert find_calibration("tiny-llama", "transformers", 4) is None  # another batch size
    assert find_calibration("tiny-llama", "llamacpp", 2) is None
    stable = TransformersBackend(ref, batch_size=2, model=model, tokenizer=tok, calibration=found)
    chats = [user_chat("def add(a, b):"), user_chat("class Foo")]
    config = GenerationConfig(max_new_tokens=8)
    runs = [stable.generate(chats, config) for _ in range(2)]
    price = found.price(0.10)
    for run in runs:
        for (answer,) in run:
            u = answer.usage
            expected = (
                u.prompt_tokens * price.prompt_per_m + u.completion_tokens * price.completion_per_m
            ) / 1e6
            assert answer.cost.dollars == pytest.approx(expected, rel=1e-12)
            assert answer.cost.source == "calibrated@$0.1/h"
    assert [a.cost.dollars for (a,) in runs[0]] == [a.cost.dollars for (a,) in runs[1]]
    assert wall_priced.generate(chats, config)[0][0].cost.source == "local@$0.1/h"
    save_calibration(replace(found, machine="another-host: some CPU, 64 cores", batch_size=3))
    assert find_calibration("tiny-llama", "transformers", 3) is None


def test_calibrate_command_makes_eval_prices_stable(tmp_path: Path):
    """`llm-eff calibrate` on the embedded model saves a calibration that `llm-eff eval` then
    says it prices from; an API model is refused in one line."""
    from llm_eff.backends.llamacpp_backend import available

    engine = "llamacpp" if available() else "transformers"
    env = {"LLM_EFF_CACHE": str(tmp_path / "cache")}
    args = ["--engine", engine, "--batch-size", "2", "--rounds", "1", "--new-tokens", "4"]
    out = cli("calibrate", "smollm2-135m", *args, env=env)
    assert out.returncode == 0, out.stderr
    assert "prefill" in out.stdout and "Saved to" in out.stdout
    assert list((tmp_path / "cache" / "calibration").rglob(f"smollm2-135m-{engine}-b2.json"))
    run = tmp_path / "run.jsonl"
    evaluated = cli(
        "eval",
        "--bench",
        "efficiency",
        "--limit",
        "1",
        "--engine",
        engine,
        "--batch-size",
        "2",
        "--run",
        str(run),
        env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"smollm2-135m: priced from this machine's calibration ({engine})" in evaluated.stdout
    assert '"source": "calibrated@$0.1/h"' in run.read_text()
    refused = cli("calibrate", "openai/gpt-4o-mini", env=env)
    assert refused.returncode == 2 and "API model" in refused.stderr
