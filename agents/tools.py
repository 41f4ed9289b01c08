"""The agent's tools. Each takes one text input and returns a text observation; a failure is an
observation starting with "error:", so the agent can react instead of crashing.

- `python`: runs the input as a Python program in the project's sandbox (no network, limits),
  with the task's attachment copied into its work directory; the observation is its output.
- `read_file`: the attachment's text (CSV/TXT/JSON/Markdown), cut to a size.
- `calculator`: an arithmetic expression (+ - * / // % **, parentheses, round/abs/min/max).
- `sql`: a read-only SQLite query against the task's attached database.
- `search`: only through a function the user supplies (`module:function`, text -> text).
"""

from __future__ import annotations

import ast
import importlib
import operator
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llm_eff.core.errors import UserError

MAX_OBSERVATION = 2000


@dataclass(frozen=True)
class Tool:
    """A named tool: what the model is told about it, and the function that runs it."""

    name: str
    description: str
    run: Callable[[str, Path | None], str]


def _cut(text: str) -> str:
    return text if len(text) <= MAX_OBSERVATION else text[:MAX_OBSERVATION] + "\n...(cut)"


def run_python(code: str, attachment: Path | None) -> str:
    """Run `code` in the sandbox, the attachment beside it; stdout (and stderr on failure)."""
    from llm_eff.sandbox import Limits, run_sandboxed

    code = code.strip().removeprefix("```python").removeprefix("```").removesuffix("```")
    files: dict[str, str | bytes] = {"main.py": code}
    if attachment is not None:
        files[attachment.name] = attachment.read_bytes()
    result = run_sandboxed(
        [sys.executable, "main.py"], files=files, limits=Limits(wall_s=20, cpu_s=10, memory_mb=1024)
    )
    if result.timed_out:
        return "error: the program timed out"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        return _cut(f"error: {last}\n{result.stdout}")
    return _cut(result.stdout.strip() or "(no output; print the result)")


def read_file(_: str, attachment: Path | None) -> str:
    """The attachment's text."""
    if attachment is None:
        return "error: this task has no attached file"
    if attachment.suffix in (".sqlite", ".db"):
        return "error: this is a SQLite database; use the sql tool"
    return _cut(attachment.read_text(errors="replace"))


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCS = {"round": round, "abs": abs, "min": min, "max": max}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
        return _FUNCS[node.func.id](*(_eval(a) for a in node.args))
    raise ValueError("only numbers, + - * / // % ** and round/abs/min/max are allowed")


def calculator(expression: str, _: Path | None) -> str:
    """The value of an arithmetic expression."""
    text = expression.strip().replace(",", "").replace("^", "**")
    try:
        value = _eval(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
        return f"error: {exc}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def run_sql(query: str, attachment: Path | None) -> str:
    """Rows of a read-only query on the attached SQLite database."""
    if attachment is None or attachment.suffix not in (".sqlite", ".db"):
        return "error: this task has no attached SQLite database"
    query = query.strip().strip("`").removeprefix("sql").strip()
    try:
        with sqlite3.connect(f"file:{attachment}?mode=ro", uri=True) as conn:
            cursor = conn.execute(query)
            header = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(50)
    except sqlite3.Error as exc:
        return f"error: {exc}"
    lines = [" | ".join(header)] + [" | ".join(str(v) for v in row) for row in rows]
    return _cut("\n".join(lines))


def load_search(spec: str) -> Tool:
    """The user's search tool from `module:function`; UserError when it cannot be imported."""
    module_name, _, func_name = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError, ValueError):
        raise UserError(f"search tool '{spec}' not found (use module:function)") from None
    return Tool(
        "search",
        "search the web; input: a query",
        lambda text, _: _cut(str(func(text))),
    )


BUILTIN: dict[str, Tool] = {
    "python": Tool("python", "run a Python program and see what it prints", run_python),
    "read_file": Tool("read_file", "read the attached file (input is ignored)", read_file),
    "calculator": Tool("calculator", "evaluate arithmetic, e.g. (3 + 4) * 2", calculator),
    "sql": Tool("sql", "run a SQLite query on the attached database", run_sql),
}


def make_tools(names: list[str], search: str | None = None) -> dict[str, Tool]:
    """The named tools; UserError for an unknown name or `search` without a function."""
    tools = {}
    for name in names:
        if name == "search":
            if not search:
                raise UserError("tool 'search' needs search_function: module:function")
            tools[name] = load_search(search)
        elif name in BUILTIN:
            tools[name] = BUILTIN[name]
        else:
            known = ", ".join([*BUILTIN, "search"])
            raise UserError(f"unknown tool '{name}': use {known}")
    return tools
