"""Mixture-of-Recursions: recursion-wise KV cache vs recomputation, routing, losses, save/load,
generate(), config errors, and FLOPs-matched training on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from llm_eff.mor import MoRConfig, MoRForCausalLM
from llm_eff.mor.train import ModelSpec, make_model, train_flops_per_token, train_to_budget


def tiny_mor(
    router: str = "expert", kv_cache: str = "recursion", recursions: int = 3, seed: int = 0
) -> MoRForCausalLM:
    config = MoRConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_recursions=recursions,
        router=router,
        kv_cache=kv_cache,
    )
    torch.manual_seed(seed)
    model = MoRForCausalLM(config).eval()
    for r in getattr(model.model, "routers", []):  # spread the scores so routing varies
        torch.nn.init.normal_(r.weight, std=0.5)
    return model


@pytest.mark.parametrize("router", ["expert", "token"])
@pytest.mark.parametrize("kv_cache", ["recursion", "shared"])
def test_cached_decoding_gives_the_logits_of_recomputation(router: str, kv_cache: str) -> None:
    model = tiny_mor(router, kv_cache)
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids, use_cache=False)
        out = model(ids[:, :5], use_cache=True)
        steps, cache = [out.logits], out.cache
        for i in range(5, 12):
            out = model(ids[:, i : i + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
    assert torch.allclose(full.logits, torch.cat(steps, dim=1), atol=1e-5)
    layers = full.layers_executed
    assert layers.min() < 8 and layers.max() == 8  # tokens really took different depths
    assert cache.seen_tokens == 12 and len(cache.mean_layers()) == 2


def test_recursion_cache_holds_only_the_tokens_that_reached_each_depth() -> None:
    model = tiny_mor("expert", "recursion")
    ids = torch.randint(0, 300, (1, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(ids, use_cache=True)
    block = model.config.block_size
    per_depth = [out.cache.entries[1 + r * block].keys.shape[2] for r in range(3)]
    reached = [int((out.layers_executed >= 2 + block * (r + 1)).sum()) for r in range(3)]
    assert per_depth == reached and per_depth[0] == 16 and per_depth[2] < 16
    shared = tiny_mor("expert", "shared")
    with torch.no_grad():
        out = shared(ids, use_cache=True)
    assert set(out.cache.entries) == {0, 1, 2, 7}  # first layer, the block once, last layer


def test_generate_matches_with_and_without_cache_and_padding_changes_nothing() -> None:
    model = tiny_mor("expert", "recursion")
    ids = torch.randint(1, 300, (2, 7), generator=torch.Generator().manual_seed(3))
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    cached = model.generate(ids, **kw)
    assert torch.equal(cached, model.generate(ids, use_cache=False, **kw))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids[:1]], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 7, dtype=torch.long)], 1)
    batch = torch.cat([padded, torch.cat([ids[1:], ids[1:, :3]], dim=1)])
    both = model.generate(batch, attention_mask=torch.cat([mask, torch.ones(1, 10).long()]), **kw)
    assert torch.equal(both[0, -6:], cached[0, -6:])


def test_save_and_load_round_trip_through_the_auto_classes(tmp_path) -> None:
    model = tiny_mor("token", "shared")
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MoRForCausalLM) and loaded.config.router == "token"
    ids = torch.randint(0, 300, (2, 9))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_training_routes_by_capacity_and_every_router_loss_trains() -> None:
    model = tiny_mor("expert").train()
    ids = torch.randint(0, 300, (4, 30))
    out = model(ids, labels=ids, use_cache=False)
    # capacity 2/3 then 1/3 of 30 tokens: 30, 20, 10 tokens per recursion of 2 layers
    assert out.layers_executed.sum(1).tolist() == [2 * 30 + 2 * (30 + 20 + 10)] * 4
    assert out.aux_loss > 0 and out.z_loss > 0 and out.loss > out.lm_loss
    out.loss.backward()
    assert all(r.weight.grad.abs().sum() > 0 for r in model.model.routers)
    token = tiny_mor("token").train()
    out = token(ids, labels=ids, use_cache=False)
    skewed = tiny_mor("token").train()
    with torch.no_grad():
        skewed.model.routers[0].bias.copy_(torch.tensor([10.0, 0.0, 0.0]))  # all take 1 recursion
    lopsided = skewed(ids, labels=ids, use_cache=False)
    assert lopsided.layers_executed.max() == 4 and lopsided.balance_loss > 2.9  # n x 1 x ~1
    assert out.balance_loss < lopsided.balance_loss
    out.loss.backward()
    assert token.model.routers[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(num_hidden_layers=7, num_recursions=2), "multiple of num_recursions"),
        (dict(sharing="zigzag"), "sharing must be one of"),
        (dict(router="moe"), "router must be one of"),
        (dict(num_recursions=1, router="expert", num_hidden_layers=4), "needs num_recursions"),
        (dict(num_recursions=3, capacity=[0.5]), "capacity needs 2 shares"),
        (dict(num_recursions=3, capacity=[0.3, 0.6]), "must not grow"),
        (dict(kv_cache="paged"), "kv_cache must be one of"),
    ],
)
def test_invalid_sharing_and_recursion_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MoRConfig(**settings)


def test_equal_flops_training_gives_the_cheaper_model_more_tokens() -> None:
    ids = np.random.default_rng(0).integers(0, 300, 5000).astype(np.uint16)
    shape = dict(hidden=32, intermediate=64, heads=4, kv_heads=2)
    vanilla = make_model(ModelSpec("v", "llama", 8, **shape), 300)
    mor = make_model(ModelSpec("m", "mor", 8, recursions=3, **shape), 300)
    budget = train_flops_per_token(vanilla, 8, 16) * 4 * 16 * 3  # three vanilla steps
    a = train_to_budget(vanilla, ids, budget, batch_size=4, seq_len=16)
    b = train_to_budget(mor, ids, budget, batch_size=4, seq_len=16)
    assert a.steps == 3 and b.steps > a.steps and b.mean_layers == pytest.approx(6.0, abs=0.2)
    assert a.flops >= budget and b.flops >= budget and np.isfinite(b.final_loss)


def test_a_saved_mor_model_is_an_eval_system_reporting_layers(tmp_path) -> None:
    from evals.benchmarks.efficiency import load_efficiency
    from evals.runner import RunOptions, run_system
    from evals.systems import parse_system
    from llm_eff.core.runlog import RunLog
    from llm_eff.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    config = MoRConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_recursions=3,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = MoRForCausalLM(config)
    for r in model.model.routers:
        torch.nn.init.normal_(r.weight, std=0.5)
    model.save_pretrained(tmp_path / "mor")
    tok.save_pretrained(tmp_path / "mor")
    log = RunLog(tmp_path / "run.jsonl")
    run_system(
        load_efficiency("test"),
        parse_system(f"hf:{tmp_path / 'mor'}:max_tokens=6"),
        log,
        RunOptions(limit=2),
    )
    attempts = log.read()
    assert len(attempts) == 2
    layers = [a.usage.layers_executed for a in attempts]
    assert all(4 <= n <= 8 for n in layers) and min(layers) < 8  # routed below full depth
    assert all(a.usage.flops_estimate > 0 for a in attempts)


def test_train_mor_cli_saves_a_loadable_model_and_refuses_bad_settings(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from llm_eff.cli import app

    corpus = tmp_path / "corpus"  # a pre-tokenized corpus cache in the layout build_corpus writes
    corpus.mkdir()
    rng = np.random.default_rng(0)
    np.save(corpus / "train.npy", rng.integers(0, 49152, 4000).astype(np.uint16))
    np.save(corpus / "val.npy", rng.integers(0, 49152, 600).astype(np.uint16))
    (corpus / "corpus.json").write_text(json.dumps({"vocab_size": 49152}))
    out = tmp_path / "mor"
    args = [
        "depth",
        "train-mor",
        "--out",
        str(out),
        "--corpus",
        str(corpus),
        "--steps",
        "2",
        "--hidden",
        "32",
        "--seq-len",
        "32",
        "--batch-size",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "training.json").read_text())["steps"] == 2
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert isinstance(loaded, MoRForCausalLM) and loaded.config.num_recursions == 3
    bad = CliRunner().invoke(app, [*args, "--layers", "7"])
    assert bad.exit_code == 2 and "multiple of num_recursions" in bad.output
