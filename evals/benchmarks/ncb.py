"""NaturalCodeBench (Zhang et al., 2024): natural user prompts with pytest / JUnit tests.

The English dev set ships as package data (70 Python, 70 Java problems; see data/NOTICE.md);
a user with another NCB file in the official format (e.g. the full test set) passes its path:
`ncb-python:/path/ncb_python_en.jsonl`. Scoring follows NCB's scorer: the first fenced code
block, `from solution import *` before the tests, and stdin of "1" lines. A problem passes when
all of its tests pass; the fraction of tests passed is kept as the attempt's score.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from evals.benchmarks.base import Benchmark
from evals.benchmarks.extract import extract_code
from llm_eff.core.errors import UserError
from llm_eff.core.jsonl import read_jsonl
from llm_eff.core.types import Task
from llm_eff.sandbox import Limits, TestOutcome, run_java_tests, run_python_tests

FIELDS = ("_id", "prompt", "testcases", "reference_solution")
JAVA_LIBS_ENV = "LLM_EFF_NCB_JAVA_LIBS"
CLOSING_FENCE = "\n```\n"  # the prompt asks for exactly one code block: stop when it closes


def _packaged(language: str) -> Path:
    return Path(str(resources.files("evals.benchmarks") / "data" / f"ncb_{language}_en.jsonl"))


def load_ncb(
    language: str, path: str | None = None, java_libs: str | None = None, timeout_s: float = 30.0
) -> Benchmark:
    """NCB for `language` ('python' or 'java') from package data or an NCB-format file."""
    source = Path(path) if path else _packaged(language)
    tasks = [
        Task(
            id=str(r["_id"]),
            prompt=r["prompt"],
            language=language,
            tests=r["testcases"],
            reference=r["reference_solution"],
            setup_code=r.get("setup_code") or "",
            metadata={"category": r.get("classification") or "unknown"},
        )
        for r in read_jsonl(source, FIELDS)
    ]
    limits = Limits(wall_s=timeout_s, cpu_s=int(timeout_s))
    if language == "python":

        def score(task: Task, output: str) -> TestOutcome:
            code = extract_code(output, "python")
            return run_python_tests(code, task.tests, task.setup_code, limits)
    else:
        libs = java_libs or os.environ.get(JAVA_LIBS_ENV)
        if not libs:
            raise UserError(
                f"ncb-java needs NCB's JUnit jars: pass --java-libs DIR or set {JAVA_LIBS_ENV}"
            )
        if not Path(libs).is_dir():
            raise UserError(f"Java libraries folder not found: {libs}")
        java_limits = Limits(wall_s=max(60.0, timeout_s), cpu_s=60, memory_mb=8192, nproc=256)

        def score(task: Task, output: str) -> TestOutcome:
            return run_java_tests(extract_code(output, "java"), task.tests, libs, java_limits)

    return Benchmark(
        name=f"ncb-{language}",
        tasks=tasks,
        scorer=score,
        reference=lambda task: task.reference,
        description=f"NaturalCodeBench {language} ({source.name}, {len(tasks)} problems)",
        stop=(CLOSING_FENCE,),
    )
