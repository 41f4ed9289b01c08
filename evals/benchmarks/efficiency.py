"""The efficiency set: problems where a naive solution is correct but measurably slower.

    efficiency          all 24 problems
    efficiency:train    the 15 training problems
    efficiency:test     the 9 held-out problems (split by problem, stable across runs)

Prompts are HumanEval-style (complete the function). A passing program's workload is timed in
the sandbox (`llm_eff.sandbox.timing`), so eval attempts carry `runtime_s` next to pass/fail.
The problems themselves are in `efficiency_problems.py`.
"""

from __future__ import annotations

from evals.benchmarks.base import Benchmark, split_tasks
from evals.benchmarks.efficiency_problems import PROBLEMS
from evals.benchmarks.humaneval import INSTRUCTION, program_from_output
from llm_eff.core.errors import UserError
from llm_eff.core.types import Task
from llm_eff.sandbox import Limits, TestOutcome, run_python_tests
from llm_eff.sandbox.timing import measure_runtime

TEST_FRACTION = 0.375
SPLITS = ("all", "train", "test")


def efficiency_tasks() -> list[Task]:
    """Every problem as a Task (reference = the good solution; the naive one in metadata)."""
    return [
        Task(
            id=f"efficiency/{p.name}",
            prompt=INSTRUCTION.format(prompt=p.prompt),
            tests=p.tests,
            entry_point=p.entry_point,
            reference=p.reference,
            metadata={
                "category": "efficiency",
                "raw_prompt": p.prompt,
                "workload": p.workload,
                "naive": p.naive,
            },
        )
        for p in PROBLEMS
    ]


def load_efficiency(split: str | None = None, timeout_s: float = 10.0) -> Benchmark:
    """The efficiency benchmark for `split` ('all', 'train' or 'test')."""
    split = split or "all"
    if split not in SPLITS:
        raise UserError(f"unknown efficiency split '{split}' (use {', '.join(SPLITS)})")
    tasks = efficiency_tasks()
    if split != "all":
        train, test = split_tasks(tasks, TEST_FRACTION)
        tasks = train if split == "train" else test
    limits = Limits.within(timeout_s)

    def score(task: Task, output: str) -> TestOutcome:
        program = program_from_output(task, output)
        outcome = run_python_tests(program, task.tests, limits=limits, entry_point=task.entry_point)
        if outcome.passed:
            outcome.runtime_s = measure_runtime(program, task, timeout_s=timeout_s)
        return outcome

    return Benchmark(
        name="efficiency" if split == "all" else f"efficiency:{split}",
        tasks=tasks,
        scorer=score,
        reference=lambda task: "```python\n" + task.reference + "```",
        description=f"efficiency headroom problems, {split} ({len(tasks)} problems)",
        stop=("\n```\n",),
        program=program_from_output,
    )
