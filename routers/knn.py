"""Embedding routers trained on outcomes: k-nearest neighbours and logistic regression.

Both learn from labelled prompts, label 1 when the weak target is not enough (the strong one
is needed), and score a request by its embedding (see `embedding.py`):

- `KNNRouter`: the similarity-weighted share of label-1 prompts among the k most similar
  training prompts (cosine similarity), a simplified form of RouteLLM's similarity-weighted
  ranking; the weighting keeps scores continuous, so thresholds calibrate finely;
- `LogisticRouter`: a logistic regression on the embedding plus the prompt's log length
  (standardised on the training prompts; `length=False` drops it), fitted with L2 by
  scikit-learn (soft labels as two weighted rows each, which gives the same log loss).

Both follow the trainable-router contract of `routers.base.TrainableRouter`: `fit(texts,
labels)` embeds the texts itself; `fit_vectors` takes embeddings already computed.

Labels may be soft (in [0, 1]): trained on the gain label of `routers.training` (strong right
and weak wrong 1, the reverse 0, a tie 0.5), a router ranks prompts by the accuracy the strong
target is expected to add, which is the order that maximises accuracy at any share of strong
calls.

Both save to a folder (`router.json` + `weights.npz`) and load back to identical decisions;
`save_router` / `load_router` also handle the small-LM routers of `routers.slm`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm_eff.core.errors import UserError
from routers.base import request_text
from routers.embedding import dot, embed


def _log_lengths(texts: list[str]) -> np.ndarray:
    """log(1 + characters) of each text: the logistic router's length feature, unscaled."""
    return np.log1p([len(t) for t in texts])


def _vector(request: dict[str, Any] | str) -> np.ndarray:
    return embed([request_text(request)])[0]


@dataclass
class KNNRouter:
    """Similarity-weighted share of 'strong needed' among the k nearest training prompts."""

    name: str = "knn"
    k: int = 20
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 384), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def fit(self, texts: list[str], labels: np.ndarray) -> KNNRouter:
        """Embed and keep the labelled texts."""
        return self.fit_vectors(embed(list(texts)), np.asarray(labels, np.float32))

    def fit_vectors(
        self, vectors: np.ndarray, labels: np.ndarray, texts: list[str] | None = None
    ) -> KNNRouter:
        """Keep the labelled embeddings (`texts` unused: kNN reads the embedding only)."""
        if len(vectors) == 0:
            raise UserError("knn router: no training data")
        self.vectors, self.labels = vectors.astype(np.float32), labels.astype(np.float32)
        return self

    def score_vectors(self, vectors: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
        """Scores for many embeddings at once (`texts` unused: kNN reads the embedding only)."""
        sims = dot(vectors, self.vectors.T)
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.maximum(np.take_along_axis(sims, top, axis=1), 1e-6)
        return (weights * self.labels[top]).sum(axis=1) / weights.sum(axis=1)

    def score(self, request: dict[str, Any] | str) -> float:
        """Score one request."""
        return float(self.score_vectors(_vector(request)[None, :])[0])

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Scores for many texts (embedded in batches)."""
        return self.score_vectors(embed(texts))


@dataclass
class LogisticRouter:
    """P(strong needed | embedding, log length) from a logistic regression."""

    name: str = "logistic"
    l2: float = 1e-2
    length: bool = True
    length_mean: float = 0.0
    length_std: float = 1.0
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    bias: float = 0.0

    def _design(self, vectors: np.ndarray, texts: list[str] | None) -> np.ndarray:
        """The model's inputs: the embeddings, plus the standardised log length column."""
        x = np.asarray(vectors, dtype=np.float32)
        if not self.length:
            return x
        if texts is None or len(texts) != len(x):
            raise ValueError("the logistic router's length feature needs the prompt texts")
        z = (_log_lengths(texts) - self.length_mean) / self.length_std
        return np.hstack([x, z.astype(np.float32)[:, None]])

    def fit(self, texts: list[str], labels: np.ndarray) -> LogisticRouter:
        """Embed the texts and fit (labels in [0, 1])."""
        return self.fit_vectors(embed(list(texts)), np.asarray(labels, np.float32), list(texts))

    def fit_vectors(
        self, vectors: np.ndarray, labels: np.ndarray, texts: list[str] | None = None
    ) -> LogisticRouter:
        """Fit the L2-regularised log loss on embeddings (and texts, for the length feature).

        scikit-learn's objective is C * sum of weighted losses + |w|^2 / 2, so C = 1 / (l2 * n)
        is the mean loss + l2 |w|^2 / 2. A soft label y becomes a row labelled 1 with weight y
        and a row labelled 0 with weight 1 - y.
        """
        from sklearn.linear_model import LogisticRegression

        if len(vectors) == 0:
            raise UserError("logistic router: no training data")
        if self.length and texts is not None:
            logs = _log_lengths(texts)
            self.length_mean, self.length_std = float(logs.mean()), float(logs.std() or 1.0)
        x = self._design(vectors, texts).astype(np.float64)
        y = np.clip(np.asarray(labels, np.float64), 0.0, 1.0)
        if y.min() == y.max():  # one class only: a constant score, as the data says
            self.weights = np.zeros(x.shape[1], np.float32)
            self.bias = float(np.log((y[0] + 1e-6) / (1 - y[0] + 1e-6)))
            return self
        model = LogisticRegression(C=1.0 / (self.l2 * len(y)), max_iter=1000)
        model.fit(
            np.vstack([x, x]),
            np.concatenate([np.ones(len(y)), np.zeros(len(y))]),
            sample_weight=np.concatenate([y, 1 - y]),
        )
        self.weights = model.coef_[0].astype(np.float32)
        self.bias = float(model.intercept_[0])
        return self

    def score_vectors(self, vectors: np.ndarray, texts: list[str] | None = None) -> np.ndarray:
        """Scores for many embeddings (and their texts, for the length feature) at once."""
        logits = dot(self._design(vectors, texts), self.weights) + self.bias
        return 1 / (1 + np.exp(-logits))

    def score(self, request: dict[str, Any] | str) -> float:
        """Score one request."""
        text = request_text(request)
        return float(self.score_vectors(embed([text]), [text])[0])

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Scores for many texts (embedded in batches)."""
        return self.score_vectors(embed(texts), texts)


TRAINED = {"knn": KNNRouter, "logistic": LogisticRouter}


def save_router(router: Any, folder: str | Path) -> Path:
    """Write a trained router into `folder` (kNN/logistic: `router.json` + `weights.npz`;
    small-LM routers: `router.json` + their adapter, see `routers.slm`)."""
    if hasattr(router, "save"):
        return router.save(folder)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = next(k for k, cls in TRAINED.items() if isinstance(router, cls))
    arrays = {k: v for k, v in vars(router).items() if isinstance(v, np.ndarray)}
    params = {k: v for k, v in vars(router).items() if not isinstance(v, np.ndarray)}
    np.savez(folder / "weights.npz", **arrays)
    (folder / "router.json").write_text(json.dumps({"kind": kind, **params}, indent=2))
    return folder


def load_router(folder: str | Path) -> Any:
    """A router saved by `save_router`; UserError if the folder is not one."""
    from routers.slm import SMALL_LM

    folder = Path(folder)
    try:
        meta = json.loads((folder / "router.json").read_text())
        kind = meta.pop("kind", None)
        if kind in SMALL_LM:
            return SMALL_LM[kind].load(folder, meta)
        arrays = dict(np.load(folder / "weights.npz"))
    except (OSError, ValueError) as exc:
        raise UserError(f"not a saved router folder: {folder} ({exc})") from None
    if kind not in TRAINED:
        raise UserError(f"{folder}: unknown router kind '{kind}'")
    if kind == "logistic":
        meta.setdefault("length", False)  # saved before the length feature existed
        for old in ("steps", "lr"):  # gradient-descent settings of routers saved before sklearn
            meta.pop(old, None)
    return TRAINED[kind](**meta, **arrays)
