"""The command-line toolkit every package's commands use: a package declares its commands on a
`Commands` set (registered under the entry-point group `llm_eff.commands`, see pyproject.toml),
and the root app in `llm_eff.cli` mounts them. Also: the wrapper that turns user errors into one
line, the console and the progress display."""

from __future__ import annotations

import functools
from typing import Any

import typer

from llm_eff.core.errors import BackendError, SandboxError, UserError


class Commands:
    """A package's commands and command groups, declared where they are written and mounted on
    the root app by `register` (the entry point)."""

    def __init__(self) -> None:
        self._items: list[tuple[str, Any, bool]] = []

    def command(self, name: str) -> Any:
        """Decorator: a top-level command called `name`."""

        def add(func: Any) -> Any:
            self._items.append((name, func, False))
            return func

        return add

    def group(self, group: typer.Typer, name: str) -> typer.Typer:
        """A command group (`llm-eff NAME ...`)."""
        self._items.append((name, group, True))
        return group

    def register(self, app: typer.Typer) -> None:
        """Mount every command and group on `app`."""
        for name, item, is_group in self._items:
            if is_group:
                app.add_typer(item, name=name)
            else:
                app.command(name)(item)


def make_console(stderr: bool = False) -> Any:
    """A rich console. On a terminal (or with COLUMNS set) it wraps to the screen; elsewhere (a
    log file, a pipe) it does not wrap at all, so table headers and numbers are never cut."""
    import os
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=100_000)


TABLE_FORMATS = ("table", "md", "csv", "json")


def print_rows(header: list[str], rows: list[list[str]], fmt: str = "table") -> None:
    """Print a table as a rich table, Markdown, CSV or JSON (one object per row) on stdout;
    UserError for another format."""
    import csv
    import io
    import json
    import sys

    from rich.table import Table

    if fmt not in TABLE_FORMATS:
        raise UserError(f"unknown format '{fmt}' (use {', '.join(TABLE_FORMATS)})")
    if fmt == "table":
        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        make_console().print(table)
    elif fmt == "md":
        lines = [header, ["---"] * len(header), *rows]
        sys.stdout.write("".join("| " + " | ".join(line) + " |\n" for line in lines))
    elif fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *rows])
        sys.stdout.write(out.getvalue())
    else:
        sys.stdout.write(
            json.dumps([dict(zip(header, row, strict=True)) for row in rows], indent=1) + "\n"
        )


METAVARS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "path": "PATH", "file": "FILE"}


def plain_metavars(command: Any) -> None:
    """Help shows TEXT, INTEGER, PATH (not Python's <str>, <list[str]>), nothing after a flag."""
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") != "option" or param.metavar is not None:
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
            continue
        label = param.display_type(None) if hasattr(param, "display_type") else ""
        name = (label or "").strip("<>").removeprefix("list[").removesuffix("]").split(" ")[0]
        param.metavar = METAVARS.get(name, name.upper() or None)
    original = command.get_help_option

    def help_option(ctx: Any) -> Any:  # made afresh for each help page: a flag, no metavar
        option = original(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)


def friendly(func: Any) -> Any:
    """Turn user errors into one red line and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rich.console import Console

        try:
            return func(*args, **kwargs)
        except UserError as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except SandboxError as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
        except BackendError as exc:
            Console(stderr=True).print(
                f"[bold red]error:[/] model call failed: {exc} (finished attempts are kept; "
                "rerun the same command to resume)",
                highlight=False,
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            Console(stderr=True).print("interrupted: finished attempts are kept in the run log")
            raise typer.Exit(130) from None

    return wrapper


def progress_bar(console: Any) -> Any:
    """The CLI's progress display: description, bar, done/total, elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
