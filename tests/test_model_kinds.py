"""The model-kind contract: every registered kind (and every tuning method's saved adapter)
loads through the model reference parser and generates through the backend like any model:
a batch of 2 prompts of different lengths, n = 2, greedy and sampled."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llm_eff.backends.base import GenerationConfig, user_chat
from llm_eff.backends.transformers_backend import TransformersBackend
from llm_eff.models import parse_model
from llm_eff.models.registry import model_kinds
from llm_eff.models.tiny import tiny_llama, tiny_tokenizer
from llm_eff.peft.config import METHODS

ON_CPU = [m for m in METHODS if m != "qlora"]  # qlora's 4-bit backbone needs CUDA


def _adapter(method: str, out: Path) -> str:
    from llm_eff.peft import MethodConfig, prepare, save

    config = MethodConfig(method, rank=4, reduction=2)
    save(prepare(tiny_llama()[0], config), out, config, base_model="tiny-llama")
    tiny_tokenizer().save_pretrained(str(out))
    return str(out)


def _drllm(out: Path) -> str:
    from llm_eff.depth.router import DrLLM

    routed = DrLLM(tiny_llama()[0], "tiny-llama")
    with torch.no_grad():
        for p in routed.routers.parameters():
            p.normal_(std=1.0)
    routed.save(out)
    return f"drllm:{out}"


def _mor(out: Path) -> str:
    from llm_eff.mor import MoRConfig, MoRForCausalLM

    tok = tiny_tokenizer()
    config = MoRConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_recursions=2,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    MoRForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return f"hf:{out}"


def _hf(out: Path) -> str:
    model, tok = tiny_llama()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return f"hf:{out}"


CASES = {
    "tiny": lambda out: "tiny-llama",
    "hf": _hf,
    "drllm": _drllm,
    "mor": _mor,
    **{f"adapter-{m}": (lambda out, m=m: _adapter(m, out)) for m in ON_CPU},
}
DYNAMIC_DEPTH = {"drllm": 2, "mor": 4}  # case: full depth (layers)
EXPECTED_KIND = {"adapter-full": "hf"}  # a fully tuned model is a plain model directory


def test_every_registered_kind_is_covered():
    covered = {case.split("-")[0] for case in CASES}
    assert set(model_kinds()) == {"adapter", "drllm", "mor"}
    assert set(model_kinds()) <= covered


@pytest.mark.parametrize("case", sorted(CASES))
def test_kind_loads_by_its_model_string_and_generates_in_batches(case: str, tmp_path: Path):
    torch.manual_seed(0)
    ref = parse_model(CASES[case](tmp_path / case))
    assert ref.kind == EXPECTED_KIND.get(case, case.split("-")[0])
    backend = TransformersBackend(ref, batch_size=2)
    prompts = [user_chat("def add(a, b):"), user_chat("x")]  # different lengths: left-padded
    greedy = backend.generate(prompts, GenerationConfig(max_new_tokens=4, n=2))
    assert [len(group) for group in greedy] == [2, 2]
    for group, prompt in zip(greedy, prompts, strict=True):
        assert group[0].text == group[1].text  # greedy: both samples alike
        assert group[0].usage.prompt_tokens > 0 and 0 < group[0].usage.completion_tokens <= 4
        alone = backend.generate([prompt], GenerationConfig(max_new_tokens=4))[0][0]
        assert alone.text == group[0].text  # padding does not change the answer
        layers = [c.usage.layers_executed for c in group]
        if case in DYNAMIC_DEPTH:  # reported through the ReportsDepth protocol, per row
            assert all(x is not None and 0 < x <= 2 * DYNAMIC_DEPTH[case] for x in layers)
        else:
            assert layers == [None, None]
    sampled = backend.generate(
        prompts, GenerationConfig(max_new_tokens=4, n=2, temperature=1.0, seed=0)
    )
    assert [len(group) for group in sampled] == [2, 2]
    assert all(c.cost.dollars >= 0 for group in sampled for c in group)
