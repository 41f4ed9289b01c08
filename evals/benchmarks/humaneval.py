"""HumanEval-format code tasks from any .jsonl / .jsonl.gz file (task_id, prompt, entry_point,
test, optional canonical_solution), as in openai/human-eval and its many derivatives.

The model is asked to complete the function; its answer is either a whole program in a fenced
block (used as is when it defines the entry point) or a completion appended to the prompt.
The file's `check(candidate)` runs as one pytest test in the sandbox.
"""

from __future__ import annotations

import re
from pathlib import Path

from evals.benchmarks.base import Benchmark
from evals.benchmarks.extract import extract_code
from llm_eff.core.jsonl import read_jsonl
from llm_eff.core.types import Task
from llm_eff.sandbox import Limits, TestOutcome, run_python_tests

FIELDS = ("task_id", "prompt", "entry_point", "test")
INSTRUCTION = (
    "Complete the following Python function. Return the whole function in one "
    "```python code block.\n\n```python\n{prompt}```\n"
)


def program_from_output(task: Task, output: str) -> str:
    """The program to test: the answer's code if it defines the entry point, else prompt + it."""
    code = extract_code(output, "python") or output
    if re.search(rf"^\s*def\s+{re.escape(task.entry_point)}\s*\(", code, re.M):
        return code
    return task.metadata["raw_prompt"] + code


def load_humaneval(path: str, timeout_s: float = 20.0) -> Benchmark:
    """A benchmark over the HumanEval-format file at `path`."""
    records = read_jsonl(path, FIELDS)
    tasks = [
        Task(
            id=str(r["task_id"]),
            prompt=INSTRUCTION.format(prompt=r["prompt"]),
            language="python",
            tests=(
                f"{r['test']}\n\ndef test_check():\n    check({r['entry_point']})\n"
                if str(r["test"]).strip()
                else ""  # no check function: the task has no tests
            ),
            entry_point=r["entry_point"],
            reference=r.get("canonical_solution") or "",
            metadata={"category": "humaneval", "raw_prompt": r["prompt"]},
        )
        for r in records
    ]
    limits = Limits(wall_s=timeout_s, cpu_s=int(timeout_s))

    def score(task: Task, output: str) -> TestOutcome:
        program = program_from_output(task, output)
        return run_python_tests(program, task.tests, limits=limits, entry_point=task.entry_point)

    def reference(task: Task) -> str:
        return "```python\n" + task.metadata["raw_prompt"] + task.reference + "\n```"

    return Benchmark(
        name=f"humaneval:{Path(path).name}",
        tasks=tasks,
        scorer=score,
        reference=reference,
        description=f"HumanEval-format tasks from {path} ({len(tasks)} tasks)",
        stop=("\n```\n",),
        program=program_from_output,
    )
