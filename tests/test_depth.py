"""Dr.LLM: layer plans, routers, plan search, router training, and the routed model as an
eval system, on tiny random Llama models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from llm_eff.cli import app
from llm_eff.core.errors import UserError
from llm_eff.depth.plans import apply_plan, execution_order, layers_executed
from llm_eff.depth.router import DrLLM, generate_routed, load_drllm
from llm_eff.depth.search import search_plan
from llm_eff.depth.train import class_weights, focal_loss
from llm_eff.models.tiny import tiny_llama


def test_plans_change_exactly_the_layers_they_name() -> None:
    model, _ = tiny_llama(layers=4)
    ids = torch.randint(0, 300, (2, 7))
    with torch.no_grad():
        full = model(ids).logits
    calls: dict[int, int] = {}
    hooks = [
        layer.register_forward_hook(lambda *_, k=k: calls.__setitem__(k, calls.get(k, 0) + 1))
        for k, layer in enumerate(model.model.layers)
    ]
    plan = [0, 2, 1, 0]  # skip, repeat, execute, skip
    with torch.no_grad(), apply_plan(model, plan):
        routed = model(ids).logits
    for hook in hooks:
        hook.remove()
    assert calls == {1: 2, 2: 1} and execution_order(plan) == [1, 1, 2]
    assert layers_executed(plan) == 3 and not torch.allclose(full, routed)
    assert len(model.model.layers) == 4 and model.config.num_hidden_layers == 4  # restored
    with torch.no_grad(), apply_plan(model, [1, 1, 1, 1]):
        assert torch.equal(model(ids).logits, full)


def test_a_plan_generates_the_same_with_and_without_the_kv_cache() -> None:
    model, _ = tiny_llama(layers=4)
    ids = torch.randint(0, 300, (2, 6))
    with torch.no_grad(), apply_plan(model, [2, 0, 1, 2]):
        cached = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=0)
        plain = model.generate(
            ids, max_new_tokens=6, do_sample=False, pad_token_id=0, use_cache=False
        )
    assert torch.equal(cached, plain)


def test_a_plan_with_repeats_runs_on_qwen2_whose_layers_have_attention_kinds() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = Qwen2ForCausalLM(config).eval()
    ids = torch.randint(0, 300, (2, 6))
    with torch.no_grad(), apply_plan(model, [2, 2, 1, 0]):  # 5 layers run from 4
        cached = model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
        plain = model.generate(
            ids, max_new_tokens=4, do_sample=False, pad_token_id=0, use_cache=False
        )
    assert torch.equal(cached, plain)
    assert len(model.config.layer_types) == 4 and model.config.num_hidden_layers == 4


def test_routed_prefill_matches_running_the_plan_and_routers_start_at_full_depth() -> None:
    model, _ = tiny_llama(layers=4)
    routed = DrLLM(model, "tiny-llama")
    ids = torch.randint(0, 300, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    plans = [[0, 2, 1, 0], [1, 1, 1, 1], [2, 0, 0, 1]]
    _, features, logits = routed.walk(ids, mask, plans)
    assert len(features) == 4 and features[0].shape == (3, 8, 64)
    for row, plan in enumerate(plans):
        positions = (mask[row : row + 1].cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad(), apply_plan(model, plan):
            expected = model(
                ids[row : row + 1], attention_mask=mask[row : row + 1], position_ids=positions
            ).logits[0]
        valid = mask[row].bool()
        assert torch.allclose(expected[valid], logits[row][valid], atol=1e-5)
    assert routed.route(ids, mask) == [[1, 1, 1, 1]] * 3
    new, chosen = generate_routed(
        routed, ids, mask, max_new_tokens=3, do_sample=False, pad_token_id=0
    )
    assert len(new) == 3 and chosen == [[1, 1, 1, 1]] * 3


def test_routers_save_and_load_and_refuse_another_model(tmp_path: Path) -> None:
    model, _ = tiny_llama(layers=4)
    routed = DrLLM(model, "tiny-llama")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in routed.routers.parameters():
            p.normal_(std=1.0)
    ids = torch.randint(0, 300, (4, 8))
    mask = torch.ones_like(ids)
    routed.save(tmp_path / "r")
    again = load_drllm(tmp_path / "r", tiny_llama(layers=4)[0])
    assert again.route(ids, mask) == routed.route(ids, mask)
    assert any(a != 1 for plan in routed.route(ids, mask) for a in plan)
    with pytest.raises(UserError, match="4 layers.*this model is llama with 3 layers"):
        load_drllm(tmp_path / "r", tiny_llama(layers=3)[0])
    with pytest.raises(UserError, match="width 64.*width 32"):
        load_drllm(tmp_path / "r", tiny_llama(layers=4, hidden=32)[0])
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(UserError, match="not a decoder-only model with model.layers"):
        DrLLM(gpt2)
    with pytest.raises(UserError, match="one action per layer"), apply_plan(model, [1, 1]):
        pass
    with pytest.raises(UserError, match="not a Dr.LLM routers directory"):
        load_drllm(tmp_path)


def test_search_finds_the_cheapest_correct_plan_it_reaches() -> None:
    def correct(plan: tuple[int, ...]) -> bool:  # right only if layer 0 is skipped
        return plan[0] == 0

    result = search_plan(correct, depth=6, simulations=60, width=6, seed=1)
    assert result.plan is not None and result.plan[0] == 0 and not result.full_correct
    assert layers_executed(result.plan) < 6
    nothing = search_plan(lambda plan: False, depth=6, simulations=10)
    assert nothing.plan is None and nothing.evaluated <= 11
    always = search_plan(lambda plan: True, depth=6, simulations=40, seed=2)
    assert always.full_correct and layers_executed(always.plan) < 6  # keeps it, cheaper


def test_focal_loss_with_class_balanced_weights_favours_rare_classes() -> None:
    labels = torch.tensor([1] * 90 + [0] * 8 + [2] * 2)
    weights = class_weights(labels)
    assert weights[2] > weights[0] > weights[1] and float(weights.sum()) == pytest.approx(3.0)
    logits = torch.zeros(100, 3)
    easy = logits.clone()
    easy[torch.arange(100), labels] = 5.0  # confident and right: loss nearly vanishes
    assert float(focal_loss(easy, labels, weights)) < 0.01 * float(
        focal_loss(logits, labels, weights)
    )


def test_trained_routers_are_an_eval_system_reporting_layers(tmp_path: Path) -> None:
    from evals.benchmarks.efficiency import load_efficiency
    from evals.runner import RunOptions, run_system
    from evals.systems import parse_system
    from llm_eff.core.runlog import RunLog

    out = tmp_path / "routers"
    result = CliRunner().invoke(
        app,
        [
            "depth",
            "train-routers",
            "--model",
            "tiny-llama",
            "--out",
            str(out),
            "--train",
            "6",
            "--test",
            "4",
            "--simulations",
            "6",
            "--epochs",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["results"]) == {
        "full depth",
        "Dr.LLM routed",
        "random skipping",
        "static pruning",
    }
    assert saved["results"]["full depth"]["mean_layers"] == 2
    log = RunLog(tmp_path / "run.jsonl")
    run_system(
        load_efficiency("test"), parse_system(f"drllm:{out}:max_tokens=4"), log, RunOptions(limit=2)
    )
    attempts = log.read()
    assert len(attempts) == 2
    assert all(1 <= a.usage.layers_executed <= 4 for a in attempts)
    from evals.metrics.summary import summarize
    from evals.report.build import summary_rows

    header, rows = summary_rows(summarize(attempts))
    assert header[-1] == "layers executed" and 1.0 <= float(rows[0][-1]) <= 4.0
    bad = CliRunner().invoke(
        app,
        ["depth", "train-routers", "--model", "tiny-llama", "--out", str(out), "--task", "trivia"],
    )
    assert bad.exit_code == 2 and "unknown depth task" in bad.output
