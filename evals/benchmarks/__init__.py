"""Benchmark loaders and their registry (NCB Python/Java, HumanEval-format files)."""

from evals.benchmarks.base import Benchmark
from evals.benchmarks.extract import extract_code
from evals.benchmarks.registry import list_benchmarks, load_benchmark

__all__ = ["Benchmark", "extract_code", "list_benchmarks", "load_benchmark"]
