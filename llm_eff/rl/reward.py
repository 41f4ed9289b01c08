"""The execution reward: correct programs score, and correct fast programs score more.

No learned reward model: a generated program is run against its task's tests in the sandbox,
then (if it passes) its workload is timed in the sandbox too. With the defaults:

    no code / does not parse              -1.0   (`syntax_error`)
    runs but fails a test, crashes, or    -0.5   (`failure`)
    is cut off by the time limit
    passes every test                      0.5 + 0.5 * min(t_ref / t_gen, 1)
                                                 (`passed` + `speed` * speed-up, capped at 1)

so a passing program earns between 0.5 and 1.0: 1.0 when it is at least as fast as the
reference, 0.75 when it takes twice as long. `t_ref` is the task's reference solution's runtime
when the task has one, else the fastest passing runtime seen so far for that task (the first
passing program then earns 1.0).

Runtime is the CPU time of the task's workload in the sandbox, measured by
`llm_eff.sandbox.timing.measure_runtime` (warm-up, `repeats` rounds, the least) with this
config's `repeats`, `warmup`, `min_round_s` and `timeout_s`. A program that sleeps or loops
is cut off at `timeout_s` by the sandbox and scores as a failure.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.core.settings import from_mapping
from llm_eff.core.types import Task
from llm_eff.sandbox import Limits, TestOutcome, run_python_tests
from llm_eff.sandbox.timing import measure_runtime


@dataclass(frozen=True)
class RewardConfig:
    """The reward's constants (module docstring) and the sandbox budget per program."""

    syntax_error: float = -1.0
    failure: float = -0.5
    passed: float = 0.5
    speed: float = 0.5
    repeats: int = 3
    warmup: int = 1
    min_round_s: float = 0.02
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.syntax_error < self.failure < self.passed:
            raise UserError("reward config: need syntax_error < failure < passed")
        if self.speed < 0 or self.repeats < 1 or self.warmup < 0 or self.timeout_s <= 0:
            raise UserError("reward config: speed >= 0, repeats >= 1, warmup >= 0, timeout_s > 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RewardConfig:
        """A config from a mapping (e.g. YAML); UserError naming any unknown key."""
        return from_mapping(cls, values, "reward config key")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class RewardResult:
    """One program's reward: the value, why (status), and the runtimes compared."""

    reward: float
    status: str  # "syntax_error", "failed", "passed"
    runtime_s: float | None = None
    reference_s: float | None = None
    reason: str = ""


def speed_reward(runtime_s: float, reference_s: float, config: RewardConfig) -> float:
    """The reward of a passing program that runs in `runtime_s` against `reference_s`."""
    ratio = min(reference_s / max(runtime_s, 1e-9), 1.0)
    return config.passed + config.speed * ratio


def check_task(task: Task) -> None:
    """UserError unless `task` is a Python task with tests (the reward needs both)."""
    if task.language != "python":
        raise UserError(f"task {task.id}: the execution reward runs Python tasks only")
    if not task.tests.strip():
        raise UserError(f"task {task.id}: has no tests, so no execution reward can be computed")


class ExecutionReward:
    """The reward function with its per-task reference runtimes (module docstring).

    Call it as `reward(code, task)`; it is thread-safe, and remembers each task's reference
    runtime (its reference solution's, measured once, or the best passing runtime so far).
    """

    def __init__(self, config: RewardConfig | None = None) -> None:
        self.config = config or RewardConfig()
        self.references: dict[str, float] = {}  # measured reference solutions
        self._best: dict[str, float] = {}  # best passing runtime, for tasks without one
        self._measured: set[str] = set()
        self._lock = threading.Lock()

    def tests(self, code: str, task: Task) -> TestOutcome:
        """Run the task's tests against `code` in the sandbox."""
        limits = Limits.within(self.config.timeout_s)
        entry = task.entry_point or None
        return run_python_tests(code, task.tests, task.setup_code, limits=limits, entry_point=entry)

    def _runtime(self, code: str, task: Task) -> float | None:
        cfg = self.config
        return measure_runtime(code, task, cfg.repeats, cfg.warmup, cfg.min_round_s, cfg.timeout_s)

    def reference_runtime(self, task: Task) -> float | None:
        """The reference solution's runtime (measured once per task), if it has one."""
        with self._lock:
            if task.id in self._measured:
                return self.references.get(task.id)
            self._measured.add(task.id)
        runtime = self._runtime(task.reference, task)
        with self._lock:
            if runtime is not None:
                self.references[task.id] = runtime
            return runtime

    def best_runtime(self, task_id: str) -> float | None:
        """The fastest passing runtime seen for a task without a reference solution."""
        return self._best.get(task_id)

    def __call__(self, code: str, task: Task) -> RewardResult:
        """Score one program for one task."""
        check_task(task)
        cfg = self.config
        outcome = self.tests(code, task)
        if outcome.reason in ("no_code", "syntax_error"):
            return RewardResult(cfg.syntax_error, "syntax_error", reason=outcome.reason)
        if not outcome.passed:
            return RewardResult(cfg.failure, "failed", reason=outcome.reason)
        reference = self.reference_runtime(task) if task.reference.strip() else None
        runtime = self._runtime(code, task)
        if runtime is None:  # passes its tests but the timed workload fails or runs too long
            return RewardResult(cfg.failure, "failed", reason="workload_failed")
        if reference is None:  # no reference solution: the best passing runtime so far
            with self._lock:
                reference = self._best.get(task.id, runtime)
                self._best[task.id] = min(reference, runtime)
        return RewardResult(speed_reward(runtime, reference, cfg), "passed", runtime, reference)
