"""Run systems over a benchmark, writing every attempt to the run log as it finishes.

Generation happens in batches on the calling thread; scoring (sandboxed tests) runs on a pool
of worker threads meanwhile, each attempt appended durably to the run log when scored.
Rerunning the same command skips attempts already in the log, keyed by (benchmark, task,
system hash, sample), so a killed run resumes and never duplicates an attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from evals.benchmarks.base import Benchmark
from evals.systems import Solve, SystemKind, SystemSpec, kind_of, system_solver
from llm_eff.backends import Backend, Completion, GenerationConfig, make_backend
from llm_eff.backends.base import total_spent
from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
from llm_eff.core.runlog import RunLog
from llm_eff.core.types import Attempt, Cost, Task, Usage
from llm_eff.models.registry import parse_model
from llm_eff.sandbox.outcome import TestOutcome


@dataclass
class RunOptions:
    """How to run: task slice, seed, parallelism, batching, pricing."""

    limit: int | None = None
    task_ids: tuple[str, ...] = ()
    seed: int = 0
    workers: int = 2
    batch_size: int = 8
    hardware_dollars_per_hour: float = DEFAULT_HARDWARE_DOLLARS_PER_HOUR
    engine: str = "auto"


Progress = Callable[[str, int], None]


def select_tasks(
    benchmark: Benchmark, limit: int | None, task_ids: tuple[str, ...] = ()
) -> list[Task]:
    """The tasks named in `task_ids` (all when empty), then the first `limit` of them."""
    tasks = list(benchmark.tasks)
    if task_ids:
        known = {t.id for t in tasks}
        unknown = [t for t in task_ids if t not in known]
        if unknown:
            raise UserError(f"{benchmark.name} has no task(s) {', '.join(unknown)}")
        wanted = set(task_ids)
        tasks = [t for t in tasks if t.id in wanted]
    return tasks[:limit] if limit else tasks


def pending(
    benchmark: Benchmark, tasks: list[Task], system: SystemSpec, done: set
) -> list[tuple[Task, int]]:
    """(task, sample) pairs of `system` not yet in the run log."""
    return [
        (t, s)
        for t in tasks
        for s in range(system.samples)
        if (benchmark.name, t.id, system.hash, s) not in done
    ]


def _attempt(
    benchmark: Benchmark,
    system: SystemSpec,
    task: Task,
    sample: int,
    candidates: list[Completion],
) -> Attempt:
    """Score the candidates of one attempt (first passing wins) and total their usage."""
    usage, cost = total_spent(candidates)
    if candidates and candidates[0].usage.latency_s:
        usage.latency_s = max(c.usage.latency_s for c in candidates)
    outcome = TestOutcome(False, "no_code", message="the model returned nothing")
    chosen, reported, tried = "", {}, 0
    for c in candidates:
        tried += 1
        outcome, chosen, reported = benchmark.score(task, c.text), c.text, c.details
        if outcome.passed:
            break
    return Attempt(
        task_id=task.id,
        system=system.name,
        system_hash=system.hash,
        sample=sample,
        output=chosen,
        passed=outcome.passed,
        score=outcome.score,
        usage=usage,
        cost=cost,
        error=None if outcome.passed else reported.get("failure", outcome.reason),
        benchmark=benchmark.name,
        details={
            "reason": outcome.reason,
            "tests_passed": outcome.tests_passed,
            "tests_total": outcome.tests_total,
            "category": task.metadata.get("category"),
            "candidates": len(candidates),
            "candidates_scored": tried,
            "sandbox": outcome.isolation,
            "runtime_s": outcome.runtime_s,
            "message": outcome.message[-1500:] if not outcome.passed else "",
            **reported,
        },
    )


def backend_for(system: SystemSpec, options: RunOptions) -> Backend:
    """The backend that runs a plain-model system with the run's batching, pricing and engine."""
    return make_backend(
        parse_model(system.model),
        options.batch_size,
        options.hardware_dollars_per_hour,
        system.api_base,
        options.engine,
    )


def solver_for(
    benchmark: Benchmark, system: SystemSpec, options: RunOptions, backends: BackendCache
) -> Solve:
    """How `system` answers a batch of tasks: its kind's solver, or its model's backend."""

    def load(model: str, api_base: str | None = None) -> Backend:
        key = (model, api_base)
        if key not in backends:
            backends[key] = backend_for(SystemSpec(model=model, api_base=api_base), options)
        return backends[key]

    return system_solver(system, benchmark, load)


BackendCache = dict[tuple[str, "str | None"], Backend]


def run_system(
    benchmark: Benchmark,
    system: SystemSpec,
    log: RunLog,
    options: RunOptions,
    progress: Progress | None = None,
    backends: BackendCache | None = None,
) -> int:
    """Run one system over the benchmark; returns how many new attempts were written."""
    tasks = select_tasks(benchmark, options.limit, options.task_ids)
    todo = pending(benchmark, tasks, system, log.done_keys())
    if not todo:
        return 0
    solve = None
    if not system.is_reference:
        solve = solver_for(benchmark, system, options, {} if backends is None else backends)
    written = 0

    def finish(future: Future) -> None:
        nonlocal written
        attempt = future.result()
        log.append(attempt)
        written += 1
        if progress:
            progress(system.name, 1)

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        futures = []
        step = options.batch_size if solve else len(todo)
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            if solve is None:
                groups = [
                    [
                        Completion(
                            benchmark.reference_output(t),
                            Usage(model="reference"),
                            Cost(0.0, "reference"),
                        )
                    ]
                    for t, _ in chunk
                ]
            else:
                config = GenerationConfig(
                    max_new_tokens=system.max_tokens,
                    temperature=system.temperature,
                    top_p=system.top_p,
                    n=system.best_of,
                    stop=benchmark.stop,
                    seed=_seed(options.seed, system, chunk[0]),
                )
                groups = solve([t for t, _ in chunk], config)
            for (task, sample), candidates in zip(chunk, groups, strict=True):
                future = pool.submit(_attempt, benchmark, system, task, sample, candidates)
                future.add_done_callback(finish)
                futures.append(future)
        for future in futures:
            future.result()
    return written


def check_systems(benchmark: Benchmark, systems: list[SystemSpec]) -> None:
    """Fail before any work on a system that cannot run: an unknown model, a missing API key,
    a system kind that does not fit the benchmark."""
    from llm_eff.backends.litellm_backend import check_api_key

    for system in systems:
        kind = kind_of(system)
        if kind is not None and kind.fits is not None:
            kind.fits(system, benchmark)
        for ref in map(parse_model, system.models()):
            if ref.kind == "api":
                check_api_key(ref.name, system.api_base)


def run_systems(
    benchmark: Benchmark,
    systems: list[SystemSpec],
    log: RunLog,
    options: RunOptions,
    progress: Progress | None = None,
) -> int:
    """Run several systems (and the steps they need) in turn, loading each model once; returns
    the new attempts written."""
    check_systems(benchmark, systems)
    backends: BackendCache = {}
    written = 0
    listed = {s.hash: s for s in systems}  # a step, if listed itself, keeps its given name
    for system in systems:
        for step in (listed.get(s.hash, s) for s in system.steps()):
            kind = kind_of(step)
            if kind is not None and kind.replay is not None:
                written += replay(benchmark, step, kind, log, options, progress)
            else:
                written += run_system(benchmark, step, log, options, progress, backends)
    return written


def replay(
    benchmark: Benchmark,
    system: SystemSpec,
    kind: SystemKind,
    log: RunLog,
    options: RunOptions,
    progress: Progress | None = None,
) -> int:
    """Write a system's attempts from the recorded attempts of its steps (its kind's `replay`);
    the steps must already be in the log."""
    tasks = select_tasks(benchmark, options.limit, options.task_ids)
    todo = {t.id for t, _ in pending(benchmark, tasks, system, log.done_keys())}
    if not todo or kind.replay is None:
        return 0
    recorded = [a for a in log.read() if a.benchmark == benchmark.name]
    written = 0
    for attempt in kind.replay(benchmark, system, tasks, recorded, options):
        if attempt.task_id in todo:
            log.append(attempt)
            written += 1
            if progress:
                progress(system.name, 1)
    return written


def _seed(base: int, system: SystemSpec, first: tuple[Task, int]) -> int:
    """A deterministic seed per (run seed, system, first task and sample of the batch)."""
    task, sample = first
    return random.Random(f"{base}|{system.hash}|{task.id}|{sample}").randrange(2**31)
