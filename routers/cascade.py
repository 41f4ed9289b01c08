"""A FrugalGPT-style cascade for any prompt: answer with the cheap target, check the answer
with a verifier, and pay for the strong target only when the check fails.

The verifier here is self-consistency, which needs no labels and works on any backend: the weak
target also samples `k` answers (temperature `sample_temperature`), and the greedy answer
stands when at least `agree` of the samples it got back give the same final answer (the fenced
code block if there is one, else the last non-empty line, whitespace and case folded).
Text-to-SQL has a stronger, free verifier (does the query run and return rows?): its cascade
is the `cascade` pipeline in `evals/benchmarks/spider/pipelines.py`. Every call's tokens and
dollars are summed into the completion, and its `usage.model` names the target whose answer
was kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from evals.systems import BackendFor, Solve, SystemKind, SystemSpec, backend_solver
from llm_eff.backends.base import Backend, Chat, Completion, GenerationConfig, total_spent
from llm_eff.core.errors import UserError

if TYPE_CHECKING:
    from evals.benchmarks.base import Benchmark

_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)


def answer_key(text: str) -> str:
    """What two answers must share to agree: the code block, else the last non-empty line."""
    match = _FENCE.search(text)
    if match:
        body = match.group(1)
    else:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        body = lines[-1] if lines else ""
    return " ".join(body.split()).lower()


@dataclass
class CascadeBackend:
    """A `Backend` that asks `weak`, verifies by self-consistency, and escalates to `strong`."""

    weak: Backend
    strong: Backend
    k: int = 3
    agree: float = 0.67
    sample_temperature: float = 0.7
    name: str = ""

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 < self.agree <= 1:
            raise UserError("cascade: k must be >= 1 and agree in (0, 1]")
        self.name = self.name or f"cascade:{self.weak.name}>{self.strong.name}"

    def generate(self, chats: list[Chat], config: GenerationConfig) -> list[list[Completion]]:
        """`config.n` answers per chat; each escalated on its own when the check fails."""
        first = self.weak.generate(chats, config)
        temperature = config.temperature or self.sample_temperature
        checks = self.weak.generate(chats, replace(config, n=self.k, temperature=temperature))
        out: list[list[Completion]] = []
        escalate: list[tuple[int, int]] = []
        for i, (answers, samples) in enumerate(zip(first, checks, strict=True)):
            spent = total_spent(samples)
            group = []
            for j, answer in enumerate(answers):
                share = sum(answer_key(s.text) == answer_key(answer.text) for s in samples)
                usage, cost = answer.usage + spent[0], answer.cost + spent[1]
                if j:  # the check's samples are paid once per chat
                    usage, cost = answer.usage, answer.cost
                group.append(Completion(answer.text, usage, cost, answer.finish_reason))
                if share / max(len(samples), 1) < self.agree:
                    escalate.append((i, j))
            out.append(group)
        if escalate:
            strong = self.strong.generate([chats[i] for i, _ in escalate], replace(config, n=1))
            for (i, j), (answer,) in zip(escalate, strong, strict=True):
                kept = out[i][j]
                usage = kept.usage + answer.usage
                usage.model = answer.usage.model or self.strong.name
                out[i][j] = Completion(
                    answer.text, usage, kept.cost + answer.cost, answer.finish_reason
                )
        return out


def _cascade_models(system: SystemSpec) -> list[str]:
    weak, _, strong = system.model.removeprefix("cascade:").partition(">")
    return [weak, strong]


def _check(system: SystemSpec) -> SystemSpec:
    weak, strong = _cascade_models(system)
    if not (weak and strong and ">" in system.model):
        raise UserError(
            f"system '{system.model}': write cascade:WEAK>STRONG, e.g. "
            "cascade:smollm2-135m>openai/gpt-4o-mini"
        )
    return system


def _solver(system: SystemSpec, benchmark: Benchmark, backend_for: BackendFor) -> Solve:
    weak, strong = (backend_for(m, system.api_base) for m in _cascade_models(system))
    backend = CascadeBackend(weak, strong, name=system.model, **system.extra)
    return backend_solver(backend, system, benchmark)


SYSTEM_KIND = SystemKind(
    "cascade",
    "cascade:WEAK>STRONG[:k=3,agree=0.67] answers with WEAK and escalates to STRONG when WEAK's "
    "k samples agree less than `agree`",
    options={"k": int, "agree": float},
    check=_check,
    models=_cascade_models,
    solver=_solver,
)
