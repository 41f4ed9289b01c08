"""`llm-eff eval`, `report`, `models`, `benchmarks`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llm_eff.backends import check_engine
from llm_eff.core.cli import Commands, friendly, make_console, progress_bar
from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR

COMMANDS = Commands()

SPEND_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")


@COMMANDS.command("eval")
@friendly
def eval_command(
    bench: Annotated[
        str,
        typer.Option(
            "--bench",
            "-b",
            help="Benchmark: ncb-python, ncb-java, efficiency[:train|test], spider-dev:DIR, "
            "ncb-python:FILE, humaneval:FILE (.jsonl or .jsonl.gz); `llm-eff benchmarks` "
            "describes each.",
        ),
    ],
    system: Annotated[
        list[str] | None,
        typer.Option(
            "--system",
            "-s",
            help="A system to run; "
            "repeat for several. MODEL[:opts], e.g. smollm2-135m, "
            "smollm2-135m:best-of-4, smollm2-135m:samples=5,temperature=0.8, "
            "smollm2-135m:quant=int4 (weights in fp32|bf16|fp16|int8|int4|nf4), "
            "openai/gpt-4o-mini, hf:DIR, drllm:DIR, 'reference' (the reference solutions); "
            "Spider: sql-basic|sql-intermediate|sql-advanced|sql-cascade, routed:KIND (rules, "
            "knn, logistic, slm, dpo, random, oracle); any: cascade:WEAK>STRONG.",
            show_default="smollm2-135m, the embedded model",
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            "-o",
            help="Run log (JSONL) to append to; "
            "rerunning with the same log resumes. Default: runs/<bench>.jsonl",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks.", min=1)] = None,
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", help="Only these task ids, comma-separated (e.g. 131,136)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling.")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel sandbox workers for scoring.", min=1)] = 2,
    batch_size: Annotated[int, typer.Option(help="Prompts per generation batch.", min=1)] = 8,
    hardware_price: Annotated[
        float,
        typer.Option(
            help="Hardware $/hour used to price local models (with measured tokens/s).", min=0
        ),
    ] = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
    java_libs: Annotated[
        Path | None,
        typer.Option(help="NCB's JUnit jars folder (ncb-java); or set LLM_EFF_NCB_JAVA_LIBS."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds allowed per program's tests.", min=1)
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="Local engine: auto (llama.cpp for GGUF models when installed, else "
            "transformers), transformers, llamacpp (extra) or vllm (GPU, extra)."
        ),
    ] = "auto",
) -> None:
    """Run systems over a benchmark; every attempt lands in the run log as it finishes."""

    from evals.benchmarks import load_benchmark
    from evals.runner import RunOptions, check_systems, pending, run_systems, select_tasks
    from evals.systems import parse_system
    from llm_eff.core.runlog import RunLog

    console = make_console()
    check_engine(engine)
    if not system:
        console.print("no --system given: evaluating the embedded model, smollm2-135m")
    systems = list({s.hash: s for s in map(parse_system, system or ["smollm2-135m"])}.values())
    benchmark = load_benchmark(
        bench, java_libs=str(java_libs) if java_libs else None, timeout_s=timeout
    )
    check_systems(benchmark, systems)
    log_path = run or Path("runs") / f"{benchmark.name.replace(':', '-').replace('/', '-')}.jsonl"
    log = RunLog(log_path)
    task_ids = tuple(t.strip() for t in tasks.split(",") if t.strip()) if tasks else ()
    options = RunOptions(
        limit=limit,
        task_ids=task_ids,
        seed=seed,
        workers=workers,
        batch_size=batch_size,
        hardware_dollars_per_hour=hardware_price,
        engine=engine,
    )
    _say_pricing(console, systems, engine, batch_size)
    selected = select_tasks(benchmark, limit, task_ids)
    done = log.done_keys()
    # a routed system runs its pipelines first; they get their own bars and summary rows
    shown: dict[str, Any] = {s.hash: s for s in systems}
    for s in systems:
        for step in s.steps():
            shown.setdefault(step.hash, step)
    console.print(
        f"[bold]{benchmark.description}[/]: {len(selected)} tasks, "
        f"{len(systems)} system(s), run log {log_path}"
    )
    with progress_bar(console) as progress:
        bars = {}
        for s in shown.values():
            if s.name in bars:
                continue
            total = len(selected) * s.samples
            left = len(pending(benchmark, selected, s, done))
            bars[s.name] = progress.add_task(s.name, total=total, completed=total - left)
        run_systems(
            benchmark, systems, log, options, lambda name, n: progress.advance(bars[name], n)
        )
    _print_summary(
        console, log_path, {(benchmark.name, h) for h in shown}, {t.id for t in selected}
    )
    console.print(f"next: [bold]llm-eff report {log_path}[/]")


def _say_pricing(console: Any, systems: list, engine: str, batch_size: int) -> None:
    """One line per local model on how it is priced: calibrated (stable) or wall time."""
    from llm_eff.backends import choose_engine
    from llm_eff.backends.calibration import find_calibration
    from llm_eff.models.registry import parse_model

    seen = set()
    for system in systems:
        for model in system.models():
            ref = parse_model(model)
            if ref.kind == "api" or model in seen:
                continue
            seen.add(model)
            used = choose_engine(ref, engine)
            if find_calibration(ref.name, used, batch_size):
                console.print(f"{ref.name}: priced from this machine's calibration ({used})")
            else:
                console.print(
                    f"{ref.name}: priced from each batch's wall time, so its dollars follow "
                    f"this machine's load; `llm-eff calibrate {model} --engine {used} "
                    f"--batch-size {batch_size}` makes them stable"
                )


def _print_summary(
    console: Any, log_path: Path, keys: set[tuple[str, str]], task_ids: set[str]
) -> None:
    from rich.table import Table

    from evals.metrics.summary import summarize
    from evals.report.build import summary_rows
    from llm_eff.core.runlog import RunLog

    attempts = [
        a
        for a in RunLog(log_path).read()
        if (a.benchmark, a.system_hash) in keys and a.task_id in task_ids
    ]
    if not attempts:
        return
    header, rows = summary_rows(summarize(attempts))
    keep = [
        i
        for i, h in enumerate(header)
        if h.startswith(
            ("system", "tasks", "pass@", "cost-of-pass", "$ /", "tokens /", "program", "layers")
        )
    ]
    table = Table(*[header[i] for i in keep])
    for row in rows:
        table.add_row(*[row[i] for i in keep])
    console.print(table)


def _spend_attempts(url: str) -> list:
    """A proxy spend database's requests as attempts, read by the proxy's own store (found under
    the entry-point group `llm_eff.spend_readers`, so evals does not import the proxy)."""
    from importlib.metadata import entry_points

    readers = list(entry_points(group="llm_eff.spend_readers"))
    if not readers:
        raise UserError("no proxy spend reader is installed: reinstall llm-eff")
    return readers[0].load()(url)


@COMMANDS.command("report")
@friendly
def report_command(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run log(s) written by `llm-eff eval`, "
            "or a proxy spend database (.db / .sqlite) for a proxy period."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Report folder. Default: <run log name>-report beside the first run log.",
        ),
    ] = None,
    title: Annotated[str, typer.Option(help="Report title.")] = "llm-eff cost report",
    human_cost: Annotated[
        float | None,
        typer.Option(
            help="A human expert's $ per task, to include in the frontier cost-of-pass.", min=0
        ),
    ] = None,
    spend_db: Annotated[
        str | None,
        typer.Option(
            help="A proxy spend database URL (postgresql://... or sqlite:///path) "
            "to report on, alongside or instead of run logs."
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Write into --out even if it holds files other than an earlier report "
            "(an earlier report there is always replaced)."
        ),
    ] = False,
) -> None:
    """Write report.md and a self-contained report.html (plots embedded) from run logs."""

    from evals.report import write_report
    from evals.report.build import is_foreign_folder

    runs = runs or []
    if not runs and not spend_db:
        raise UserError("give at least one run log (or --spend-db URL)")
    logs = [r for r in runs if r.suffix not in SPEND_DB_SUFFIXES]
    databases = [f"sqlite:///{r}" for r in runs if r.suffix in SPEND_DB_SUFFIXES]
    for r in runs:
        if r.suffix in SPEND_DB_SUFFIXES and not r.is_file():
            raise UserError(f"spend database not found: {r}")
    spend = []
    for url in databases + ([spend_db] if spend_db else []):
        spend += _spend_attempts(url)
    default_out = runs[0].with_name(runs[0].stem + "-report") if runs else Path("runs/proxy-report")
    out_dir = out or default_out
    replacing = (out_dir / "summary.json").is_file() and not is_foreign_folder(out_dir)
    files = write_report(logs, out_dir, title, human_cost, attempts=spend, overwrite=overwrite)
    console = make_console()
    if replacing:
        console.print(f"replaced the earlier report in {out_dir}")
    console.print(f"Markdown report: [bold]{files.markdown}[/]")
    console.print(f"HTML report:     [bold]{files.html.resolve()}[/]")
    console.print(f"Summary (JSON):  {files.summary_json}")


@COMMANDS.command("benchmarks")
@friendly
def benchmarks_command() -> None:
    """List the benchmarks `llm-eff eval --bench` accepts."""
    from rich.table import Table

    from evals.benchmarks import list_benchmarks

    table = Table("benchmark", "description")
    for name, desc in list_benchmarks().items():
        table.add_row(name, desc)
    make_console().print(table)
