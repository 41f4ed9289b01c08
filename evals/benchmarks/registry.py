"""Benchmark registry: a spec string names a loader and, optionally, a file.

ncb-python              NCB dev set, Python (package data)
ncb-python:FILE         an NCB-format Python file (e.g. the full test set)
ncb-java[:FILE]         the same for Java (needs NCB's JUnit jars: --java-libs)
humaneval:FILE          any HumanEval-format .jsonl / .jsonl.gz
efficiency[:SPLIT]      problems with efficiency headroom (packaged); SPLIT: all, train, test
spider-dev:DIR          Spider dev (your copy: DIR/dev.json, DIR/tables.json), execution accuracy
gaia-mini               nine offline GAIA-format tasks (package data; systems: agent:CONFIG)
gaia:DIR                any GAIA-format task directory (DIR/metadata.jsonl + attachments)
"""

from __future__ import annotations

from collections.abc import Callable

from evals.benchmarks.base import Benchmark
from evals.benchmarks.efficiency import load_efficiency
from evals.benchmarks.gaia import load_gaia
from evals.benchmarks.humaneval import load_humaneval
from evals.benchmarks.ncb import load_ncb
from evals.benchmarks.spider import load_spider_dev
from llm_eff.core.errors import UserError


def _missing(form: str) -> Benchmark:
    raise UserError(f"this benchmark needs a path: {form}")


def _humaneval(path: str | None, **opts) -> Benchmark:
    if not path:
        raise UserError("humaneval needs a file: humaneval:/path/to/file.jsonl[.gz]")
    return load_humaneval(path, timeout_s=opts.get("timeout_s", 20.0))


REGISTRY: dict[str, tuple[Callable[..., Benchmark], str]] = {
    "ncb-python": (
        lambda path, **o: load_ncb("python", path, timeout_s=o.get("timeout_s", 30.0)),
        "NaturalCodeBench dev, Python (70 problems, packaged)",
    ),
    "ncb-java": (
        lambda path, **o: load_ncb(
            "java", path, java_libs=o.get("java_libs"), timeout_s=o.get("timeout_s", 60.0)
        ),
        "NaturalCodeBench dev, Java (70 problems, packaged; needs --java-libs)",
    ),
    "humaneval": (_humaneval, "HumanEval-format file given by path: humaneval:FILE"),
    "spider-dev": (
        lambda path, **o: load_spider_dev(path),
        "Spider dev by execution accuracy on databases built from tables.json: spider-dev:DIR",
    ),
    "gaia-mini": (
        lambda path, **o: load_gaia(),
        "nine offline GAIA-format tasks (CSV, SQLite, text; packaged); systems: agent:CONFIG",
    ),
    "gaia": (
        lambda path, **o: load_gaia(path) if path else _missing("gaia:DIR"),
        "GAIA-format task directory (metadata.jsonl + attachments): gaia:DIR",
    ),
    "efficiency": (
        lambda split, **o: load_efficiency(split, timeout_s=o.get("timeout_s", 10.0)),
        "problems with efficiency headroom (24, packaged); efficiency:train / efficiency:test",
    ),
}


def load_benchmark(spec: str, **options) -> Benchmark:
    """Load the benchmark named by `spec` (see module docstring); UserError if unknown."""
    name, _, path = spec.partition(":")
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UserError(f"unknown benchmark '{name}' (known: {known})")
    loader, _ = REGISTRY[name]
    return loader(path or None, **{k: v for k, v in options.items() if v is not None})


def list_benchmarks() -> dict[str, str]:
    """Benchmark names and one-line descriptions."""
    return {name: desc for name, (_, desc) in REGISTRY.items()}
