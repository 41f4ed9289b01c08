"""The `agent:CONFIG.yaml` system kind: an agent configuration answers GAIA-format tasks.

Each task's answer is one Completion whose usage and cost are the sum of all its model calls
(planner, actor, summariser, judge; every best-of-N run), so cost-of-pass per configuration
comes out of the shared report. The evals runner runs it like any system: attempts go to the run
log as they finish, and rerunning skips what is logged (a killed sweep resumes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from agents.config import AgentConfig, load_config
from agents.graph import Call, Models, Step, build_graph
from agents.tools import make_tools
from evals.benchmarks.base import Benchmark
from evals.benchmarks.gaia import normalize_text
from evals.runner import Progress, RunOptions, run_systems
from evals.systems import SystemKind, SystemSpec
from llm_eff.backends.base import Completion, GenerationConfig, total_spent
from llm_eff.backends.batching import map_batched
from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
from llm_eff.core.runlog import RunLog
from llm_eff.core.types import Task


@dataclass
class RunResult:
    """One agent run on one task."""

    answer: str | None
    failure: str | None
    steps: list[Step]
    calls: list[Call]


def run_once(
    task: Task, config: AgentConfig, backends: dict[str, Any], temperature: float, seed: int
) -> RunResult:
    """One pass of the graph on `task`."""
    models = Models(backends, config, temperature, seed)
    tools = make_tools(list(config.tools), config.search_function)
    graph = build_graph(config, tools, models)
    state = graph.invoke(
        {
            "question": task.prompt,
            "attachment": task.metadata.get("file"),
            "steps": [],
            "summary": "",
        },
        {"recursion_limit": 6 * config.max_steps + 10},
    )
    failure = state.get("failure")
    answer = state.get("answer")
    if answer is None and failure is None:
        failure = "no_answer"
    return RunResult(answer, failure, state.get("steps") or [], models.calls)


def _judge(
    task: Task, answers: list[str], config: AgentConfig, backends: dict[str, Any]
) -> tuple[str, list[Call]]:
    models = Models(backends, config)
    listing = "\n".join(f"{i + 1}. {a}" for i, a in enumerate(answers))
    reply = models(
        "judge",
        f"Task: {task.prompt}\nCandidate answers:\n{listing}\n"
        "Reply with the number of the best answer only.",
    )
    digits = [int(t) for t in reply.replace(".", " ").split() if t.isdigit()]
    pick = digits[0] - 1 if digits and 0 < digits[0] <= len(answers) else 0
    return answers[pick], models.calls


def solve(
    task: Task, config: AgentConfig, backends: dict[str, Any], seed: int = 0
) -> tuple[str | None, str | None, list[RunResult], list[Call]]:
    """(answer, failure, runs, extra calls) with the configuration's test-time scaling."""
    if config.samples == 1:
        run = run_once(task, config, backends, 0.0, seed)
        return run.answer, run.failure, [run], []
    runs = [
        run_once(task, config, backends, config.sample_temperature, seed + i)
        for i in range(config.samples)
    ]
    answers = [r.answer for r in runs if r.answer is not None]
    if not answers:
        return None, runs[0].failure, runs, []
    if config.scaling.startswith("vote"):
        counts = Counter(normalize_text(a) for a in answers)
        best = counts.most_common(1)[0][0]
        return next(a for a in answers if normalize_text(a) == best), None, runs, []
    answer, calls = _judge(task, answers, config, backends)
    return answer, None, runs, calls


def answer(task: Task, config: AgentConfig, backends: dict[str, Any], seed: int = 0) -> Completion:
    """Solve `task` with `config`: the final answer as one Completion, whose usage and cost are
    those of every call made, and whose details say what the agent did."""
    final, failure, runs, extra = solve(task, config, backends, seed)
    calls = [c for r in runs for c in r.calls] + extra
    usage, cost = total_spent(call.completion for call in calls)
    steps = [s for r in runs for s in r.steps]
    tool_calls = [s for s in steps if s.tool]
    return Completion(
        final or "",
        usage,
        cost,
        details={
            **({"failure": failure} if failure else {}),
            "steps": len(steps),
            "tool_calls": len(tool_calls),
            "tool_errors": sum(s.observation.startswith("error:") for s in tool_calls),
            "llm_calls": len(calls),
            "runs": len(runs),
            "config": config.to_dict(),
            "trace": [
                {"reply": s.reply[:400], "tool": s.tool, "observation": s.observation[:400]}
                for s in runs[0].steps
            ],
        },
    )


def agent_system(config: AgentConfig) -> SystemSpec:
    """The eval system of one agent configuration (what `agent:CONFIG.yaml` parses to)."""
    make_tools(list(config.tools), config.search_function)  # an unknown tool fails up front
    return SystemSpec(
        model=f"agent:{config.name}",
        label=config.name,
        api_base=config.api_base,
        extra={"config": config.to_dict()},
        kind="agent",
    )


def _check(system: SystemSpec) -> SystemSpec:
    config = load_config(system.model.removeprefix("agent:"))
    return replace(agent_system(config), label=system.label or config.name)


def _fits(system: SystemSpec, benchmark: Any) -> None:
    if not benchmark.name.startswith("gaia:"):
        raise UserError(
            f"'{system.name}' is an agent configuration: run it on GAIA-format tasks "
            f"(gaia-mini or gaia:DIR), not {benchmark.name}"
        )


def _solver(system: SystemSpec, benchmark: Any, backend_for: Any) -> Any:
    config = AgentConfig.from_dict(system.extra["config"])
    backends = {role: backend_for(m, config.api_base) for role, m in config.models().items()}

    def run(tasks: list[Task], settings: GenerationConfig) -> list[list[Completion]]:
        # the tasks' calls made at the same moment go to the model as one batch
        return map_batched(
            lambda t, models: [answer(t, config, models, settings.seed or 0)], tasks, backends
        )

    return run


SYSTEM_KIND = SystemKind(
    "agent",
    "agent:CONFIG.yaml runs a cost-aware agent configuration (agents/config.py) on GAIA tasks",
    check=_check,
    fits=_fits,
    models=lambda system: sorted(
        set(AgentConfig.from_dict(system.extra["config"]).models().values())
    ),
    solver=_solver,
)


def recommend(summaries: list[Any], keep_share: float = 0.95) -> tuple[Any, float]:
    """(the configuration with the lowest cost-of-pass among those within `keep_share` of the
    best accuracy, that best accuracy)."""
    best = max(s.accuracy for s in summaries)
    keep = [s for s in summaries if s.accuracy >= keep_share * best]
    return min(keep, key=lambda s: (s.cost_of_pass, s.dollars_per_attempt)), best


def run_agents(
    benchmark: Benchmark,
    systems: list[SystemSpec],
    log: RunLog,
    limit: int | None = None,
    hardware_dollars_per_hour: float = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
    progress: Progress | None = None,
    parallel: int = 1,
) -> int:
    """Run agent systems (`agent_system`) over a GAIA benchmark (`load_gaia`) through the evals
    runner, `parallel` tasks at a time (their model calls batched; a local engine gets that
    many slots), each group logged as it finishes; returns the new attempts written."""
    options = RunOptions(
        limit=limit,
        workers=1,
        batch_size=max(1, parallel),
        hardware_dollars_per_hour=hardware_dollars_per_hour,
    )
    return run_systems(benchmark, systems, log, options, progress)
