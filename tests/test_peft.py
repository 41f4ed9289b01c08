"""Parameter-efficient methods on a tiny random Llama: what trains, what stays frozen, what is
saved, and what backward keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llm_eff.core.errors import UserError
from llm_eff.models.tiny import tiny_llama
from llm_eff.peft import MethodConfig, load, parameter_counts, prepare, save

METHODS = ["lora", "bit1", "lst", "unipt", "full"]


def _batch(seed: int = 0, batch: int = 2, length: int = 24) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 380, (batch, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _train(model: torch.nn.Module, steps: int = 3, lr: float = 1e-2) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    model.train()
    for step in range(steps):
        model(**_batch(step)).loss.backward()
        opt.step()
        if step < steps - 1:
            opt.zero_grad()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    model.eval()
    batch = _batch(99)
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.mark.parametrize("method", METHODS)
def test_only_method_parameters_train_and_reload_is_exact(method: str, tmp_path: Path) -> None:
    base, _ = tiny_llama()
    frozen = [(p, p.detach().clone()) for p in base.parameters()]
    config = MethodConfig(method)
    model = prepare(base, config)
    trainable, total = parameter_counts(model)
    assert 0 < trainable <= total
    if method != "full":
        assert trainable < total / 4
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    _train(model)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
        else:
            assert p.grad is None, f"frozen {name} got a gradient"
    changed = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and not torch.equal(p.detach(), before[n])
    ]
    assert changed, "training changed no trainable parameter"
    if method != "full":
        for original, snapshot in frozen:
            assert torch.equal(original.detach(), snapshot), "a backbone weight changed"
    trained = _logits(model)
    save(model, tmp_path / "adapter", config)
    fresh, _ = tiny_llama()
    reloaded = load(fresh, tmp_path / "adapter")
    assert torch.equal(_logits(reloaded), trained)
    assert not torch.equal(trained, _logits(tiny_llama()[0])), "the method changed nothing"


def _graph_leaves(loss: torch.Tensor) -> set[int]:
    seen, leaves, stack = set(), set(), [loss.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.add(id(fn.variable))
        stack.extend(f for f, _ in fn.next_functions)
    return leaves


def _saved_bytes(model: torch.nn.Module) -> int:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**_batch(0, batch=4, length=96)).loss.backward()
    return sum(storages.values())


@pytest.mark.parametrize("method", ["lst", "unipt"])
def test_side_networks_do_not_backpropagate_through_the_backbone(method: str) -> None:
    base, _ = tiny_llama()
    backbone_ids = {id(p) for p in base.parameters()}
    model = prepare(base, MethodConfig(method))
    loss = model(**_batch()).loss
    leaves = _graph_leaves(loss)
    side_ids = {id(p) for p in model.parameters() if p.requires_grad}
    assert leaves and leaves <= side_ids
    assert not leaves & backbone_ids
    lora = prepare(tiny_llama()[0], MethodConfig("lora"))
    assert _saved_bytes(model) < 0.6 * _saved_bytes(lora)


def test_binary_adapter_weights_are_two_levels_and_packed(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from llm_eff.peft.binary import adapter_linears

    config = MethodConfig("bit1", rank=4)
    model = prepare(tiny_llama()[0], config)
    _train(model)
    linears = adapter_linears(model)
    for _, linear in linears:
        assert linear.weight.unique().numel() <= 2  # the binarised weight the forward uses
    save(model, tmp_path / "b", config)
    state = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    n_weights = sum(linear.weight.numel() for _, linear in linears)
    assert state["packed_bits"].dtype == torch.uint8
    assert state["packed_bits"].numel() == (n_weights + 7) // 8
    assert state["scale_offset"].shape == (len(linears), 2)
    saved = json.loads((tmp_path / "b" / "adapter_config.json").read_text())
    assert saved["llm_eff_method"] == "bit1" and saved["peft_type"] == "LORA"


def test_lora_adapter_opens_with_peft_itself(tmp_path: Path) -> None:
    from peft import PeftModel

    config = MethodConfig("lora")
    model = prepare(tiny_llama()[0], config)
    _train(model)
    save(model, tmp_path / "l", config)
    opened = PeftModel.from_pretrained(tiny_llama()[0], str(tmp_path / "l"))
    assert torch.equal(_logits(opened), _logits(model))


def test_side_tuned_generation_matches_full_recompute() -> None:
    model = prepare(tiny_llama()[0], MethodConfig("lst"))
    _train(model, steps=2, lr=5e-2)
    model.eval()
    prompt = _batch(3, batch=1, length=10)["input_ids"]
    out = model.generate(prompt, max_new_tokens=6)
    tokens = prompt
    with torch.no_grad():
        for _ in range(6):
            nxt = model(input_ids=tokens).logits[:, -1].argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, nxt], dim=1)
    assert torch.equal(out, tokens)


def test_lst_refuses_an_unsupported_architecture_and_unipt_takes_it() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100))
    with pytest.raises(UserError, match="lst supports"):
        prepare(gpt2, MethodConfig("lst"))
    with pytest.raises(UserError, match="target modules"):
        prepare(gpt2, MethodConfig("lora"))
    unipt = prepare(gpt2, MethodConfig("unipt"))
    ids = torch.randint(0, 100, (1, 8))
    assert unipt(input_ids=ids, labels=ids).loss.isfinite()


def test_unknown_method_and_bad_values() -> None:
    with pytest.raises(UserError, match="unknown method"):
        MethodConfig("vera")
    with pytest.raises(UserError, match="rank"):
        MethodConfig("lora", rank=0)
    assert MethodConfig("bitfit1").method == "bit1"


def test_load_rejects_a_directory_without_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a saved adapter"):
        load(tiny_llama()[0], tmp_path)


@pytest.mark.parametrize("method", ["full", "lora", "lst"])
def test_chunked_training_loss_equals_the_models_own(method: str) -> None:
    from llm_eff.peft.loss import training_loss

    batch = _batch(5, batch=2, length=40)
    batch["labels"][:, :7] = -100  # a masked prompt
    grads, losses = [], []
    for chunked in (False, True):
        model = prepare(tiny_llama()[0], MethodConfig(method))
        if method != "full":
            _train(model, steps=1)  # B / up-projections start at zero: move them first
        model.zero_grad()
        loss = training_loss(model, batch, chunk=16) if chunked else model(**batch).loss
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
        losses.append(loss.detach())
    assert torch.allclose(losses[0], losses[1], atol=1e-5)
    for plain, chunk in zip(*grads, strict=True):
        assert torch.allclose(plain, chunk, atol=1e-5, rtol=1e-4)


def _family_model(family: str) -> torch.nn.Module:
    import transformers

    config_cls, model_cls = {
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
    }[family]
    config = config_cls(
        vocab_size=400,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    return model_cls(config)


@pytest.mark.parametrize("family", ["qwen2", "mistral"])
@pytest.mark.parametrize("method", ["lora", "bit1", "lst", "unipt"])
def test_methods_work_on_other_model_families(family: str, method: str, tmp_path: Path) -> None:
    model = prepare(_family_model(family), MethodConfig(method))
    _train(model, steps=2)
    trained = _logits(model)
    save(model, tmp_path / "a", MethodConfig(method))
    assert torch.equal(_logits(load(_family_model(family), tmp_path / "a")), trained)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        prepare(tiny_llama()[0], MethodConfig("qlora"))


@pytest.mark.gpu
def test_qlora_trains_on_a_gpu(tmp_path: Path) -> None:
    from llm_eff.models.tiny import save_tiny_llama
    from llm_eff.peft.train import load_base

    path = save_tiny_llama(tmp_path / "tiny")
    model, _ = load_base(f"hf:{path}", "qlora")
    model = prepare(model, MethodConfig("qlora"))
    batch = {k: v.cuda() for k, v in _batch().items()}
    loss = model(**batch).loss
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)
    save(model, tmp_path / "q", "qlora")
    assert (tmp_path / "q" / "adapter_model.safetensors").is_file()


def test_prepared_models_train_in_a_hugging_face_trainer(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    base, _ = tiny_llama()
    frozen = [(p, p.detach().clone()) for p in base.parameters()]
    model = prepare(base, MethodConfig("lst"))
    up_before = model.up_proj.weight.detach().clone()
    ids = torch.randint(5, 300, (8, 16), generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": r, "attention_mask": torch.ones_like(r), "labels": r} for r in ids]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        learning_rate=1e-2,
    )
    Trainer(model=model, args=args, train_dataset=data).train()
    assert not torch.equal(model.up_proj.weight, up_before)
    assert all(torch.equal(p.detach(), snapshot) for p, snapshot in frozen)


@pytest.mark.parametrize("method", ["lst", "unipt"])
def test_side_tuned_adapters_generate_through_the_backend_in_batches(
    method: str, tmp_path: Path
) -> None:
    """An LST / UniPT adapter directory as an eval model: a batch of 2 prompts, n = 2, greedy
    and sampled, as every other model (it used to raise for a batch or n > 1)."""
    from llm_eff.backends.base import GenerationConfig, user_chat
    from llm_eff.backends.transformers_backend import TransformersBackend
    from llm_eff.models import parse_model

    torch.manual_seed(0)
    model, _ = tiny_llama()
    side = prepare(model, MethodConfig(method, reduction=2))
    for p in side.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.5)  # a correction that changes the answers
    save(side, tmp_path / method, MethodConfig(method, reduction=2), base_model="tiny-llama")
    backend = TransformersBackend(parse_model(str(tmp_path / method)), batch_size=2)
    prompts = [user_chat("def add(a, b):"), user_chat("x")]  # different lengths: left-padded
    greedy = backend.generate(prompts, GenerationConfig(max_new_tokens=6, n=2))
    assert [len(group) for group in greedy] == [2, 2]
    alone = [backend.generate([p], GenerationConfig(max_new_tokens=6))[0][0] for p in prompts]
    for group, single in zip(greedy, alone, strict=True):
        assert group[0].text == group[1].text == single.text
        assert group[0].usage.prompt_tokens == single.usage.prompt_tokens
        assert 0 < group[0].usage.completion_tokens <= 6
    plain, _ = tiny_llama()
    base = TransformersBackend(parse_model("tiny-llama"), model=plain, tokenizer=backend.tokenizer)
    base_text = base.generate(prompts[:1], GenerationConfig(max_new_tokens=6))[0][0].text
    assert base_text != alone[0].text  # the side network is in the loop
    sampled = backend.generate(
        prompts, GenerationConfig(max_new_tokens=6, n=2, temperature=1.5, seed=1)
    )
    assert [len(group) for group in sampled] == [2, 2]
    assert len({c.text for group in sampled for c in group}) > 1


def test_dora_and_rslora_are_peft_lora_variants_that_reload_exactly(tmp_path: Path) -> None:
    ids = torch.randint(0, 300, (2, 6))
    for method in ("dora", "rslora"):
        torch.manual_seed(0)
        config = MethodConfig(method, rank=4, alpha=8.0)
        model = prepare(tiny_llama()[0], config)
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable)
        layer = next(m for m in model.modules() if isinstance(getattr(m, "scaling", None), dict))
        if method == "dora":
            assert any("lora_magnitude_vector" in n for n in trainable)
        else:
            assert layer.scaling["default"] == pytest.approx(8.0 / 4**0.5)  # alpha / sqrt(r)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.1)  # B starts at zero: make the adapter do something
        save(model, tmp_path / method, config, base_model="tiny-llama")
        again = load(tiny_llama()[0], tmp_path / method)
        model.eval()
        again.eval()
        assert torch.allclose(model(input_ids=ids).logits, again(input_ids=ids).logits, atol=1e-5)
