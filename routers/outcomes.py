"""Per-query routing outcomes: which models answered each prompt correctly.

The file shape is RouteLLM's published MMLU data: CSV with a `prompt` column and one boolean
column per model (`True`/`False`), one file per subject (the file name is the group used for
held-out splits). `load_outcomes` reads a CSV file or a folder of them; prompts listed in a
JSONL exclusion file (`eval_prompt` field, e.g. RouteLLM's `mmlu_contaminated_prompts.jsonl`)
are dropped. Users bring their own logs in the same shape.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llm_eff.core.errors import UserError
from llm_eff.core.types import Attempt

TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}


@dataclass
class Outcomes:
    """Prompts, their group (subject), a correctness vector per model and, where measured (run
    logs), the dollars each model spent on each prompt."""

    prompts: list[str]
    groups: list[str]
    correct: dict[str, list[bool]]
    costs: dict[str, list[float]] = field(default_factory=dict)

    def subset(self, keep: list[int]) -> Outcomes:
        """The rows at indices `keep`."""
        return Outcomes(
            [self.prompts[i] for i in keep],
            [self.groups[i] for i in keep],
            {m: [v[i] for i in keep] for m, v in self.correct.items()},
            {m: [v[i] for i in keep] for m, v in self.costs.items()},
        )

    def then(self, other: Outcomes, models: Sequence[str]) -> Outcomes:
        """These rows followed by `other`'s, for the `models` both have (UserError if not)."""
        for name, side in (("training", self), ("test", other)):
            lacking = [m for m in models if m not in side.correct]
            if lacking:
                raise UserError(
                    f"the {name} outcomes have no column {', '.join(map(repr, lacking))} "
                    f"(have: {', '.join(side.correct)})"
                )
        both = [m for m in models if m in self.costs and m in other.costs]
        return Outcomes(
            self.prompts + other.prompts,
            self.groups + other.groups,
            {m: self.correct[m] + other.correct[m] for m in models},
            {m: self.costs[m] + other.costs[m] for m in both},
        )

    def accuracy(self, model: str) -> float:
        """Share of prompts the model answered correctly."""
        values = self.correct[model]
        return sum(values) / len(values) if values else 0.0


def _read_csv(path: Path, models: list[str] | None) -> tuple[list[str], dict[str, list[bool]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise UserError(f"{path}: needs a 'prompt' column and one column per model")
        columns = [c for c in reader.fieldnames if c != "prompt"]
        if models is not None and columns != models:
            raise UserError(f"{path}: model columns {columns} differ from {models}")
        prompts, correct = [], {c: [] for c in columns}
        for line, row in enumerate(reader, 2):
            prompts.append(row["prompt"])
            for c in columns:
                value = (row[c] or "").strip().lower()
                if value not in TRUE | FALSE:
                    raise UserError(f"{path}:{line}: '{c}' must be True or False, got '{row[c]}'")
                correct[c].append(value in TRUE)
    return prompts, correct


def load_outcomes(path: str | Path, exclude: str | Path | None = None) -> Outcomes:
    """Outcomes from a CSV file or a folder of CSVs (see module docstring)."""
    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise UserError(f"no outcome CSV files at {path}")
    excluded: set[str] = set()
    if exclude is not None:
        for line in Path(exclude).read_text(encoding="utf-8").splitlines():
            if line.strip():
                excluded.add(json.loads(line).get("eval_prompt", ""))
    prompts: list[str] = []
    groups: list[str] = []
    correct: dict[str, list[bool]] = {}
    models: list[str] | None = None
    for f in files:
        p, c = _read_csv(f, models)
        models = models or list(c)
        correct = correct or {m: [] for m in models}
        for i, prompt in enumerate(p):
            if prompt in excluded:
                continue
            prompts.append(prompt)
            groups.append(f.stem)
            for m in models:
                correct[m].append(c[m][i])
    if not prompts:
        raise UserError(f"{path}: no prompts")
    return Outcomes(prompts, groups, correct)


def outcomes_from_attempts(
    attempts: Sequence[Attempt], prompts: dict[tuple[str, str], str], models: Sequence[str]
) -> Outcomes:
    """Outcomes of `models` (system names) from run-log attempts, on the tasks every one of them
    answered: passed if its first sample passed, cost its dollars; `prompts` maps (benchmark,
    task id) to the task's prompt, and the benchmark is the group."""
    first: dict[tuple[str, str], dict[str, Attempt]] = defaultdict(dict)
    for a in attempts:
        if a.system in models and a.sample == 0:
            first[(a.benchmark, a.task_id)][a.system] = a
    missing = [m for m in models if not any(m in by for by in first.values())]
    if missing:
        raise UserError(f"no attempts of {', '.join(missing)} in the run logs")
    keys = sorted(k for k, by in first.items() if len(by) == len(models) and k in prompts)
    if not keys:
        raise UserError("no task was answered by every one of the models")
    return Outcomes(
        [prompts[k] for k in keys],
        [k[0] for k in keys],
        {m: [first[k][m].passed for k in keys] for m in models},
        {m: [first[k][m].cost.dollars for k in keys] for m in models},
    )
