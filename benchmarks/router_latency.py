"""Router decision latency: milliseconds per `score(request)`, per router and encoder.

    .venv/bin/python benchmarks/router_latency.py [--mmlu ../shared/data/routellm/mmlu]
        [--train 1000] [--repeats 100]

The proxy asks its router once per request, so what counts is one prompt's decision time on
CPU. Routers: the rule router, and kNN and logistic (MiniLM + length) routers trained on
`--train` MMLU prompts with gain labels, each with every embedding encoder (`torch`, `onnx`,
`onnx-int8`, see `routers/embedding.py`). Prompts: one-line chat questions, RouteLLM's
multi-line MMLU questions (question plus four options), and ~1,000-token documents (cut to
MiniLM's 256 tokens). Prints p50 and p95 per router, encoder and prompt kind.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHAT = [
    "What is the capital of Australia?",
    "Write a haiku about autumn leaves.",
    "Explain the CAP theorem in two sentences.",
    "Translate 'good morning' into Spanish.",
    "How do I reverse a list in Python?",
    "Prove that the square root of 2 is irrational.",
    "Summarise the plot of Hamlet.",
    "What does HTTP status 418 mean?",
    "Give me three names for a coffee shop.",
    "Why is the sky blue?",
]


def _timed(score, prompts: list[str], repeats: int) -> tuple[float, float]:
    """(p50, p95) milliseconds of `score` over `repeats` prompts drawn in turn."""
    score(prompts[0])  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        score(prompts[i % len(prompts)])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    """Train the routers once per encoder, then time their decisions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmlu", type=Path, default=ROOT.parent / "shared/data/routellm/mmlu")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from routers import embedding
    from routers.knn import KNNRouter, LogisticRouter
    from routers.outcomes import load_outcomes
    from routers.rules import RuleRouter
    from routers.training import gain_label

    outcomes = load_outcomes(args.mmlu)
    rng = random.Random(0)
    rows = rng.sample(range(len(outcomes.prompts)), args.train + 50)
    train, probe = rows[: args.train], rows[args.train :]
    texts = [outcomes.prompts[i] for i in train]
    strong, weak = (
        outcomes.correct["gpt-4-1106-preview"],
        outcomes.correct["mistralai/Mixtral-8x7B-Instruct-v0.1"],
    )
    labels = np.array([gain_label(strong[i], weak[i]) for i in train], np.float32)
    prompts = {
        "chat (one line)": CHAT,
        "MMLU question": [outcomes.prompts[i] for i in probe],
        "document (~1k tokens)": [
            " ".join(outcomes.prompts[j] for j in probe[i : i + 24]) for i in range(0, 24, 2)
        ],
    }
    table = Table("router", "encoder", *[f"{k} p50 / p95 ms" for k in prompts])
    rules = RuleRouter()
    table.add_row(
        "rules",
        "-",
        *[
            "{:.3f} / {:.3f}".format(*_timed(rules.score, p, args.repeats))
            for p in prompts.values()
        ],
    )
    for encoder in embedding.ENCODERS:
        os.environ[embedding.ENV] = encoder
        vectors = embedding.embed(texts)
        routers = {
            "knn (k=20)": KNNRouter(k=20).fit_vectors(vectors, labels),
            "logistic (MiniLM + length)": LogisticRouter().fit_vectors(vectors, labels, texts),
        }
        for name, router in routers.items():
            cells = [
                "{:.2f} / {:.2f}".format(*_timed(router.score, p, args.repeats))
                for p in prompts.values()
            ]
            table.add_row(name, encoder, *cells)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
