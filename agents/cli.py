"""`llm-eff agent run|sweep`: cost-aware agents on GAIA-format tasks, into the shared report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_eff.core.cli import Commands, friendly, make_console, progress_bar
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR

COMMANDS = Commands()

agent_app = typer.Typer(
    help="Cost-aware langgraph agents on GAIA-format tasks (run one configuration or a grid).",
    no_args_is_help=True,
)
COMMANDS.group(agent_app, "agent")

TASKS_HELP = "GAIA-format task directory (metadata.jsonl + attachments); default: gaia-mini."
PARALLEL_HELP = (
    "Tasks solved at once; their model calls are batched (a local model decodes them together)."
)


def _run(
    tasks_dir: Path | None,
    configs: list,
    run: Path | None,
    report: Path | None,
    hardware_price: float,
    limit: int | None,
    parallel: int = 1,
) -> None:
    from rich.table import Table

    from agents.system import agent_system, recommend, run_agents
    from evals.benchmarks.gaia import MINI_TASKS, load_gaia
    from evals.metrics.summary import summarize
    from evals.runner import pending, select_tasks
    from llm_eff.core.runlog import RunLog

    console = make_console()
    directory = tasks_dir or MINI_TASKS
    benchmark = load_gaia(directory)  # a bad directory fails before any config is read
    run = run or Path("runs") / f"agents-{Path(directory).resolve().name}.jsonl"
    log = RunLog(run)
    tasks = select_tasks(benchmark, limit)
    systems = [agent_system(c) for c in configs]
    with progress_bar(console) as bar:
        job = bar.add_task("agent attempts", total=len(tasks) * len(configs))
        done = log.done_keys()
        bar.update(
            job,
            completed=len(tasks) * len(configs)
            - sum(len(pending(benchmark, tasks, s, done)) for s in systems),
        )
        run_agents(
            benchmark,
            systems,
            log,
            limit,
            hardware_price,
            progress=lambda name, n: bar.advance(job, n),
            parallel=parallel,
        )
    hashes, ids = {s.hash for s in systems}, {t.id for t in tasks}
    attempts = [
        a
        for a in log.read()
        if a.benchmark == benchmark.name and a.system_hash in hashes and a.task_id in ids
    ]
    summaries = sorted(summarize(attempts), key=lambda s: s.cost_of_pass)
    table = Table("configuration", "accuracy", "$ / task", "tokens / task", "cost-of-pass")
    for s in summaries:
        table.add_row(
            s.system,
            f"{s.accuracy:.1%}",
            f"{s.dollars_per_attempt:.6f}",
            f"{s.tokens_per_attempt:,.0f}",
            f"{s.cost_of_pass:.6f}",
        )
    console.print(table)
    if len(summaries) > 1:
        pick, best = recommend(summaries)
        console.print(
            f"recommended: [bold]{pick.system}[/] (accuracy {pick.accuracy:.1%}, >= 95% of the "
            f"best {best:.1%}, at the lowest cost-of-pass among those)"
        )
    console.print(f"run log: {run}")
    if report:
        from evals.report import write_report

        files = write_report([run], report)
        console.print(f"report: {files.markdown} and {files.html}")


@agent_app.command("run")
@friendly
def run_command(
    config: Annotated[Path, typer.Option(help="Agent configuration (YAML).")],
    tasks: Annotated[Path | None, typer.Option(help=TASKS_HELP)] = None,
    run: Annotated[Path | None, typer.Option(help="Run log (JSONL); rerun to resume.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write the cost report here.")] = None,
    hardware_price: Annotated[
        float, typer.Option(help="$/hour for local models.")
    ] = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
    limit: Annotated[int | None, typer.Option(min=1, help="First N tasks only.")] = None,
    parallel: Annotated[int, typer.Option(min=1, help=PARALLEL_HELP)] = 1,
) -> None:
    """Run one agent configuration over a task set."""
    from agents.config import load_config

    _run(tasks, [load_config(config)], run, report, hardware_price, limit, parallel)


@agent_app.command("sweep")
@friendly
def sweep_command(
    grid: Annotated[
        Path, typer.Option(help="YAML with 'base:' settings and a 'grid:' of lists to cross.")
    ],
    tasks: Annotated[Path | None, typer.Option(help=TASKS_HELP)] = None,
    run: Annotated[Path | None, typer.Option(help="Run log (JSONL); rerun to resume.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write the cost report (frontier across configs) here.")
    ] = None,
    hardware_price: Annotated[
        float, typer.Option(help="$/hour for local models.")
    ] = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
    limit: Annotated[int | None, typer.Option(min=1, help="First N tasks only.")] = None,
    parallel: Annotated[int, typer.Option(min=1, help=PARALLEL_HELP)] = 1,
) -> None:
    """Run every configuration of a grid, then print accuracy, cost and the recommendation."""
    from agents.config import load_grid

    _run(tasks, load_grid(grid), run, report, hardware_price, limit, parallel)
