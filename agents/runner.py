"""Run agent configurations over GAIA-format tasks and log one `Attempt` per (task, config).

An attempt's usage and cost are the sum of all its model calls (planner, actor, summariser,
judge; every best-of-N run), so cost-of-pass per configuration comes out of the shared report.
Attempts go to a `RunLog` as they finish; rerunning skips what is logged (a killed sweep
resumes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.config import AgentConfig
from agents.gaia import GaiaTask, normalize_text, score_answer
from agents.graph import Call, Models, Step, build_graph
from agents.tools import make_tools
from llm_eff.backends.base import total_spent
from llm_eff.core.runlog import RunLog
from llm_eff.core.types import Attempt


@dataclass
class RunResult:
    """One agent run on one task."""

    answer: str | None
    failure: str | None
    steps: list[Step]
    calls: list[Call]


def run_once(
    task: GaiaTask, config: AgentConfig, backends: dict[str, Any], temperature: float, seed: int
) -> RunResult:
    """One pass of the graph on `task`."""
    models = Models(backends, config, temperature, seed)
    tools = make_tools(list(config.tools), config.search_function)
    graph = build_graph(config, tools, models)
    state = graph.invoke(
        {"question": task.question, "attachment": str(task.file) if task.file else None,
         "steps": [], "summary": ""},
        {"recursion_limit": 6 * config.max_steps + 10},
    )  # fmt: skip
    failure = state.get("failure")
    answer = state.get("answer")
    if answer is None and failure is None:
        failure = "no_answer"
    return RunResult(answer, failure, state.get("steps") or [], models.calls)


def _judge(
    task: GaiaTask, answers: list[str], config: AgentConfig, backends: dict[str, Any]
) -> tuple[str, list[Call]]:
    models = Models(backends, config)
    listing = "\n".join(f"{i + 1}. {a}" for i, a in enumerate(answers))
    reply = models(
        "judge",
        f"Task: {task.question}\nCandidate answers:\n{listing}\n"
        "Reply with the number of the best answer only.",
    )
    digits = [int(t) for t in reply.replace(".", " ").split() if t.isdigit()]
    pick = digits[0] - 1 if digits and 0 < digits[0] <= len(answers) else 0
    return answers[pick], models.calls


def solve(
    task: GaiaTask, config: AgentConfig, backends: dict[str, Any], seed: int = 0
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


def attempt_for(
    task: GaiaTask, config: AgentConfig, benchmark: str, backends: dict[str, Any], seed: int = 0
) -> Attempt:
    """Solve `task` with `config` and score it as an Attempt."""
    answer, failure, runs, extra = solve(task, config, backends, seed)
    calls = [c for r in runs for c in r.calls] + extra
    usage, cost = total_spent(call.completion for call in calls)
    passed = answer is not None and score_answer(answer, task.answer)
    steps = [s for r in runs for s in r.steps]
    tool_calls = [s for s in steps if s.tool]
    return Attempt(
        task_id=task.task_id,
        system=config.name,
        system_hash=config.hash,
        output=answer or "",
        passed=passed,
        score=float(passed),
        usage=usage,
        cost=cost,
        error=None if passed else (failure or "wrong_answer"),
        benchmark=benchmark,
        details={
            "reason": "passed" if passed else (failure or "wrong_answer"),
            "category": f"level {task.level}",
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


def make_backends(configs: list[AgentConfig], hardware_dollars_per_hour: float) -> Callable:
    """A function role-models -> backends, loading each distinct model once."""
    from llm_eff.backends import make_backend
    from llm_eff.models import parse_model

    cache: dict[str, Any] = {}

    def backends_for(config: AgentConfig) -> dict[str, Any]:
        out = {}
        for role, model in config.models().items():
            if model not in cache:
                cache[model] = make_backend(
                    parse_model(model), 1, hardware_dollars_per_hour, config.api_base
                )
            out[role] = cache[model]
        return out

    for config in configs:  # resolve every model name up front: a typo fails before any work
        for model in config.models().values():
            parse_model(model)
    return backends_for


def run_agents(
    tasks: list[GaiaTask],
    configs: list[AgentConfig],
    log: RunLog,
    benchmark: str,
    hardware_dollars_per_hour: float = 0.10,
    seed: int = 0,
    progress: Callable[[Attempt], None] | None = None,
    backends_for: Callable[[AgentConfig], dict[str, Any]] | None = None,
) -> list[Attempt]:
    """Every (task, config) not yet in `log`, appended as it finishes; returns the new ones."""
    for config in configs:
        make_tools(list(config.tools), config.search_function)  # unknown tools fail up front
    backends_for = backends_for or make_backends(configs, hardware_dollars_per_hour)
    done = log.done_keys()
    new = []
    for config in configs:
        todo = [t for t in tasks if (benchmark, t.task_id, config.hash, 0) not in done]
        if not todo:
            continue
        backends = backends_for(config)
        for task in todo:
            attempt = attempt_for(task, config, benchmark, backends, seed)
            log.append(attempt)
            new.append(attempt)
            if progress:
                progress(attempt)
    return new


def recommend(summaries: list[Any], keep_share: float = 0.95) -> tuple[Any, float]:
    """(the configuration with the lowest cost-of-pass among those within `keep_share` of the
    best accuracy, that best accuracy)."""
    best = max(s.accuracy for s in summaries)
    keep = [s for s in summaries if s.accuracy >= keep_share * best]
    return min(keep, key=lambda s: (s.cost_of_pass, s.dollars_per_attempt)), best


def benchmark_name(tasks_dir: str | Path) -> str:
    """The run-log benchmark name of a task directory."""
    return f"gaia:{Path(tasks_dir).resolve().name}"
