"""What a benchmark is: tasks, a way to score an output, and the reference outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llm_eff.core.types import Task
from llm_eff.sandbox.outcome import TestOutcome


@dataclass
class Benchmark:
    """A named list of tasks with a scorer that runs an output's tests in the sandbox.

    `stop` holds stop strings for generation (e.g. the end of the code block the prompt asks
    for), so that models do not spend tokens after the answer.
    """

    name: str
    tasks: list[Task]
    scorer: Callable[[Task, str], TestOutcome]
    reference: Callable[[Task], str]
    description: str = ""
    stop: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)

    def score(self, task: Task, output: str) -> TestOutcome:
        """Score one model output for one task."""
        return self.scorer(task, output)

    def reference_output(self, task: Task) -> str:
        """The output a perfect system would give (for the `reference` system)."""
        return self.reference(task)
