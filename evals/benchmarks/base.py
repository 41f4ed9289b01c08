"""What a benchmark is: tasks, a way to score an output, and the reference outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llm_eff.core.types import Task
from llm_eff.sandbox.outcome import TestOutcome


@dataclass
class Benchmark:
    """A named list of tasks with a scorer that runs an output's tests in the sandbox.

    `stop` holds stop strings for generation (e.g. the end of the code block the prompt asks
    for), so that models do not spend tokens after the answer. `program` turns a model output
    into the program the scorer tests (by default, the output's code block). `solve` runs a
    named multi-call pipeline instead of one generation (systems with `pipeline=NAME`).
    """

    name: str
    tasks: list[Task]
    scorer: Callable[[Task, str], TestOutcome]
    reference: Callable[[Task], str]
    description: str = ""
    stop: tuple[str, ...] = ()
    program: Callable[[Task, str], str] | None = None
    solve: Callable[..., list] | None = None  # (pipeline, backend, tasks, config) -> completions

    def score(self, task: Task, output: str) -> TestOutcome:
        """Score one model output for one task."""
        return self.scorer(task, output)

    def program_of(self, task: Task, output: str) -> str:
        """The program a model output stands for (what the scorer runs)."""
        if self.program is not None:
            return self.program(task, output)
        from evals.benchmarks.extract import extract_code

        return extract_code(output, task.language)

    def reference_output(self, task: Task) -> str:
        """The output a perfect system would give (for the `reference` system)."""
        return self.reference(task)


def split_tasks(tasks: list[Task], test_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, test) split by task id: a stable hash of (seed, id) orders the tasks."""
    import hashlib

    def key(task: Task) -> str:
        return hashlib.sha256(f"{seed}:{task.id}".encode()).hexdigest()

    ordered = sorted(tasks, key=key)
    n_test = max(1, round(len(tasks) * test_fraction)) if tasks else 0
    test = {t.id for t in ordered[:n_test]}
    return [t for t in tasks if t.id not in test], [t for t in tasks if t.id in test]
