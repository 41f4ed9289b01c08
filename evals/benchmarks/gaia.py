"""GAIA-format tasks: a `metadata.jsonl` (task_id, Question, Level, Final answer, file_name) with
attachments beside it, and GAIA's answer scoring.

Scoring follows the rules of GAIA's official scorer: when the reference is a number, the
answer's `$`, `%` and `,` are dropped and the rest compared as a float (units make it wrong);
when the reference holds `,` or `;`, both are split into lists of the same length and compared
element-wise (numbers as numbers, strings without whitespace, case-insensitively); otherwise
strings are compared with whitespace and punctuation removed, case-insensitively.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

from evals.benchmarks.base import Benchmark
from llm_eff.core.errors import UserError
from llm_eff.core.types import Task
from llm_eff.sandbox.outcome import TestOutcome

METADATA = "metadata.jsonl"
MINI_TASKS = Path(__file__).parent / "data" / "gaia-mini"  # the shipped offline task set


@dataclass(frozen=True)
class GaiaTask:
    """One question, its level, reference answer and optional attachment path."""

    task_id: str
    question: str
    level: int
    answer: str
    file: Path | None = None


def load_tasks(directory: str | Path) -> list[GaiaTask]:
    """Tasks from `DIR/metadata.jsonl`; UserError naming the problem line."""
    root = Path(directory).expanduser()
    meta = root / METADATA
    if not root.is_dir():
        raise UserError(f"task directory not found: {root}")
    if not meta.is_file():
        raise UserError(f"{root}: no {METADATA} (GAIA format: task_id, Question, Level, ...)")
    tasks = []
    for n, line in enumerate(meta.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name = row.get("file_name") or ""
            attachment = root / name if name else None
            if attachment is not None and not attachment.is_file():
                raise UserError(f"{meta}:{n}: attachment {name} not found beside it")
            tasks.append(
                GaiaTask(
                    str(row["task_id"]),
                    str(row["Question"]),
                    int(row.get("Level") or 1),
                    str(row.get("Final answer", "")),
                    attachment,
                )
            )
        except json.JSONDecodeError:
            raise UserError(f"{meta}:{n}: not a JSON line") from None
        except KeyError as exc:
            raise UserError(f"{meta}:{n}: missing field {exc}") from None
    if not tasks:
        raise UserError(f"{meta}: no tasks")
    return tasks


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def normalize_number(text: str) -> float:
    """The answer as a number after dropping $, % and commas; inf when it is not one."""
    cleaned = text.strip()
    for char in "$%,":
        cleaned = cleaned.replace(char, "")
    value = _as_number(cleaned)
    return float("inf") if value is None else value


def normalize_text(text: str, drop_punctuation: bool = True) -> str:
    """Lower case, no whitespace, and (by default) no punctuation."""
    squeezed = re.sub(r"\s", "", text).lower()
    if drop_punctuation:
        squeezed = squeezed.translate(str.maketrans("", "", string.punctuation))
    return squeezed


def score_answer(answer: str, reference: str) -> bool:
    """True when `answer` matches the GAIA `reference` (see the module docstring)."""
    answer = str(answer)
    if _as_number(reference) is not None:
        return normalize_number(answer) == float(reference)
    if any(sep in reference for sep in ",;"):
        ref_items = re.split(r"[,;]", reference)
        ans_items = re.split(r"[,;]", answer)
        if len(ref_items) != len(ans_items):
            return False
        for got, want in zip(ans_items, ref_items, strict=True):
            if _as_number(want) is not None:
                if normalize_number(got) != float(want):
                    return False
            elif normalize_text(got, False) != normalize_text(want, False):
                return False
        return True
    return normalize_text(answer) == normalize_text(reference)


def _score(task: Task, output: str) -> TestOutcome:
    if not output.strip():
        return TestOutcome(False, "no_answer", 0, 1, message="the system gave no final answer")
    if score_answer(output.strip(), task.reference):
        return TestOutcome(True, "passed", 1, 1)
    return TestOutcome(False, "wrong_answer", 0, 1, message=f"answered {output.strip()[:200]!r}")


def load_gaia(directory: str | Path | None = None) -> Benchmark:
    """A GAIA-format task directory (default: the shipped gaia-mini) as a benchmark; its systems
    are agent configurations (`agent:CONFIG.yaml`) or any model answering the question."""
    root = Path(directory).expanduser() if directory else MINI_TASKS
    tasks = [
        Task(
            id=t.task_id,
            prompt=t.question,
            language="text",
            reference=t.answer,
            metadata={
                "category": f"level {t.level}",
                "level": t.level,
                "file": str(t.file) if t.file else None,
            },
        )
        for t in load_tasks(root)
    ]
    return Benchmark(
        name=f"gaia:{root.resolve().name}",
        tasks=tasks,
        scorer=_score,
        reference=lambda task: task.reference,
        description=f"GAIA-format tasks in {root.resolve().name} (exact answer, GAIA's scorer)",
    )
