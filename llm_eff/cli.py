"""`llm-eff`: evaluate systems for what a correct answer costs, and write cost reports.

User mistakes print one line and exit with status 2; nothing is half-written.
"""

from __future__ import annotations

import functools
import gc
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_eff.core.errors import BackendError, SandboxError, UserError

SPEND_DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")

app = typer.Typer(
    name="llm-eff",
    help="Make LLMs and agents cheaper to adapt, run and evaluate: every system is judged by "
    "what a correct answer costs (accuracy, pass@k, cost-of-pass, TEP).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _friendly(func: Any) -> Any:
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


@app.command("eval")
@_friendly
def eval_command(
    bench: Annotated[
        str,
        typer.Option(
            "--bench",
            "-b",
            help="Benchmark: ncb-python, ncb-java, "
            "ncb-python:FILE, humaneval:FILE (.jsonl or .jsonl.gz).",
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
            "openai/gpt-4o-mini, hf:DIR, or 'reference' (the reference solutions).",
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
    ] = 0.10,
    java_libs: Annotated[
        Path | None,
        typer.Option(help="NCB's JUnit jars folder (ncb-java); or set LLM_EFF_NCB_JAVA_LIBS."),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds allowed per program's tests.", min=1)
    ] = None,
    engine: Annotated[
        str, typer.Option(help="Local engine: transformers or vllm (GPU, extra).")
    ] = "transformers",
) -> None:
    """Run systems over a benchmark; every attempt lands in the run log as it finishes."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evals.benchmarks import load_benchmark
    from evals.runner import RunOptions, pending, run_systems, select_tasks
    from evals.systems import parse_system
    from llm_eff.core.runlog import RunLog
    from llm_eff.models.registry import parse_model

    console = Console()
    if engine not in ("transformers", "vllm"):
        raise UserError(f"unknown engine '{engine}' (transformers or vllm)")
    systems = list({s.hash: s for s in map(parse_system, system or ["smollm2-135m"])}.values())
    for s in systems:
        if not s.is_reference:
            ref = parse_model(s.model)
            if ref.kind == "api":
                from llm_eff.backends.litellm_backend import check_api_key

                check_api_key(ref.name, s.api_base)
    benchmark = load_benchmark(
        bench, java_libs=str(java_libs) if java_libs else None, timeout_s=timeout
    )
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
    selected = select_tasks(benchmark, limit, task_ids)
    done = log.done_keys()
    console.print(
        f"[bold]{benchmark.description}[/]: {len(selected)} tasks, "
        f"{len(systems)} system(s), run log {log_path}"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bars = {}
        for s in systems:
            total = len(selected) * s.samples
            left = len(pending(benchmark, selected, s, done))
            bars[s.name] = progress.add_task(s.name, total=total, completed=total - left)
        run_systems(
            benchmark, systems, log, options, lambda name, n: progress.advance(bars[name], n)
        )
    _print_summary(
        console, log_path, {(benchmark.name, s.hash) for s in systems}, {t.id for t in selected}
    )
    console.print(f"next: [bold]llm-eff report {log_path}[/]")


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
        if h.startswith(("system", "tasks", "pass@", "cost-of-pass", "$ /", "tokens /"))
    ]
    table = Table(*[header[i] for i in keep])
    for row in rows:
        table.add_row(*[row[i] for i in keep])
    console.print(table)


@app.command("report")
@_friendly
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
) -> None:
    """Write report.md and a self-contained report.html (plots embedded) from run logs."""
    from rich.console import Console

    from evals.report import write_report

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
        from routers.proxy.store import spend_attempts

        spend += spend_attempts(url)
    default_out = runs[0].with_name(runs[0].stem + "-report") if runs else Path("runs/proxy-report")
    out_dir = out or default_out
    files = write_report(logs, out_dir, title, human_cost, attempts=spend)
    console = Console()
    console.print(f"Markdown report: [bold]{files.markdown}[/]")
    console.print(f"HTML report:     [bold]{files.html.resolve()}[/]")
    console.print(f"Summary (JSON):  {files.summary_json}")


@app.command("models")
@_friendly
def models_command() -> None:
    """List the models usable offline and how to install missing ones."""
    from rich.console import Console
    from rich.table import Table

    from llm_eff.models.registry import available_models

    table = Table("model", "status", "description")
    for row in available_models():
        table.add_row(*row)
    Console().print(table)
    Console().print(
        "Also: hf:DIR (a local HF model folder) and API ids through LiteLLM, "
        "e.g. openai/gpt-4o-mini (needs its API key)."
    )


@app.command("benchmarks")
@_friendly
def benchmarks_command() -> None:
    """List the benchmarks `llm-eff eval --bench` accepts."""
    from rich.console import Console
    from rich.table import Table

    from evals.benchmarks import list_benchmarks

    table = Table("benchmark", "description")
    for name, desc in list_benchmarks().items():
        table.add_row(name, desc)
    Console().print(table)


def _proxy_config(config: Path | None, local: str | None) -> Any:
    from routers.proxy.config import load_config, parse_config

    if config is not None:
        return load_config(config)
    if local:
        return parse_config({"upstreams": {local: {"kind": "local", "model": local}}})
    raise UserError("give --config proxy.yaml or --local MODEL")


@app.command("serve")
@_friendly
def serve_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Proxy YAML: upstreams, "
            "routers, auth, database_url (see routers/proxy/config.py).",
        ),
    ] = None,
    local: Annotated[
        str | None,
        typer.Option(help="Serve this local model (e.g. smollm2-135m) with no config file."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Start the OpenAI-compatible router proxy (`/v1/chat/completions`, `/v1/models`, ...)."""
    import uvicorn

    from routers.proxy import create_app

    app_ = create_app(_proxy_config(config, local))
    # long-lived server: move start-up objects out of the collector's way and collect young
    # objects less often, which keeps GC pauses out of the request latency tail
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)


keys_app = typer.Typer(
    help="Virtual API keys of the router proxy (stored hashed).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


def _keystore(config: Path) -> Any:
    from routers.proxy.store import Database, KeyStore

    return KeyStore(Database(_proxy_config(config, None).database_url))


@keys_app.command("create")
@_friendly
def keys_create(
    name: Annotated[str, typer.Argument(help="A label for the key's owner.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="Proxy YAML.")],
    budget: Annotated[float | None, typer.Option(help="Budget in $.", min=0)] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.", min=1)] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.", min=1)] = None,
) -> None:
    """Create a key; its value is printed once and stored only as a hash."""
    plaintext, record = _keystore(config).create(name, budget, rpm, tpm)
    typer.echo(f"id: {record.id}\nkey: {plaintext}")


@keys_app.command("list")
@_friendly
def keys_list(config: Annotated[Path, typer.Option("--config", "-c", help="Proxy YAML.")]) -> None:
    """List keys with their budgets, limits and spend."""
    from rich.console import Console
    from rich.table import Table

    store = _keystore(config)
    spent = store.spent()
    table = Table("id", "name", "budget $", "spent $", "rpm", "tpm", "status")
    for r in store.all():
        table.add_row(
            r.id,
            r.name,
            "-" if r.budget_usd is None else f"{r.budget_usd:g}",
            f"{spent.get(r.id, 0.0):.6f}",
            str(r.rpm or "-"),
            str(r.tpm or "-"),
            "revoked" if r.revoked else "active",
        )
    Console().print(table)


@keys_app.command("revoke")
@_friendly
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="Proxy YAML.")],
) -> None:
    """Revoke a key (a running proxy stops accepting it within seconds)."""
    if not _keystore(config).revoke(key_id):
        raise UserError(f"no active key with id '{key_id}'")
    typer.echo(f"revoked {key_id}")


@app.command("spend")
@_friendly
def spend_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="Proxy YAML.")],
) -> None:
    """Summarise the proxy's spend log: requests, tokens, $ and latency per key and upstream."""
    from rich.console import Console
    from rich.table import Table

    from routers.proxy.store import Database

    db = Database(_proxy_config(config, None).database_url)
    rows = db.execute(
        "SELECT COALESCE(key_id, '-'), upstream, COUNT(*), SUM(prompt_tokens), "
        "SUM(completion_tokens), SUM(cost), AVG(latency_ms), AVG(overhead_ms) FROM spend_log "
        "WHERE status = 200 GROUP BY key_id, upstream ORDER BY 6 DESC"
    )
    table = Table(
        "key",
        "upstream",
        "requests",
        "prompt tok",
        "completion tok",
        "$",
        "mean latency ms",
        "mean overhead ms",
    )
    for key, upstream, n, p, c, cost, lat, over in rows:
        table.add_row(
            key,
            upstream or "-",
            str(n),
            str(p or 0),
            str(c or 0),
            f"{cost or 0:.6f}",
            f"{lat or 0:.1f}",
            f"{over or 0:.2f}",
        )
    Console().print(table)


route_app = typer.Typer(
    help="Complexity-aware routing: benchmarks on recorded outcomes.", no_args_is_help=True
)
app.add_typer(route_app, name="route")


@route_app.command("bench")
@_friendly
def route_bench(
    data: Annotated[
        Path,
        typer.Option(
            help="Outcome CSV file or folder (RouteLLM's shape: "
            "prompt + one True/False column per model), e.g. the routellm/mmlu folder."
        ),
    ],
    strong: Annotated[str, typer.Option(help="Column of the strong model.")] = "gpt-4-1106-preview",
    weak: Annotated[
        str, typer.Option(help="Column of the weak model.")
    ] = "mistralai/Mixtral-8x7B-Instruct-v0.1",
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="JSONL of prompts to drop (field "
            "eval_prompt). Default: mmlu_contaminated_prompts.jsonl beside the "
            "folder, if present."
        ),
    ] = None,
    strong_price: Annotated[
        str, typer.Option(help="LiteLLM id pricing the strong model.")
    ] = "gpt-4-1106-preview",
    weak_price: Annotated[
        str, typer.Option(help="LiteLLM id pricing the weak model.")
    ] = "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
    seed: Annotated[int, typer.Option(help="Seed of the subject split.")] = 0,
) -> None:
    """Train routers on half the subjects, score the rest: APGR, CPT, AIQ, latency."""
    from rich.console import Console
    from rich.table import Table

    from llm_eff.core.prices import api_price
    from routers.bench import run_bench
    from routers.outcomes import load_outcomes

    if exclude is None and data.is_dir():
        guess = data.parent / "mmlu_contaminated_prompts.jsonl"
        exclude = guess if guess.is_file() else None
    prices = {}
    for side, model in (("strong", strong_price), ("weak", weak_price)):
        price = api_price(model)
        if price is None:
            raise UserError(f"no list price for '{model}' in LiteLLM's cost map (--{side}-price)")
        prices[side] = price
    console = Console()
    with console.status("embedding prompts and training routers ..."):
        results, facts = run_bench(
            load_outcomes(data, exclude), strong, weak, prices["strong"], prices["weak"], seed
        )
    console.print(
        f"held out {facts['test_groups']} of {facts['test_groups'] + facts['train_groups']} "
        f"groups ({facts['test_prompts']} prompts; trained on {facts['train_prompts']}). "
        f"strong {facts['strong_accuracy']:.1%} at ${facts['strong_cost_per_query']:.6f}/query, "
        f"weak {facts['weak_accuracy']:.1%} at ${facts['weak_cost_per_query']:.6f}/query"
    )
    table = Table(
        "router",
        "APGR",
        "CPT(50%)",
        "CPT(80%)",
        "AIQ",
        "$/query at strong accuracy",
        "decision ms (p50)",
    )
    for r in results:
        table.add_row(
            r.name,
            f"{r.apgr:.3f}",
            f"{r.cpt50:.1%}",
            f"{r.cpt80:.1%}",
            f"{r.aiq:.4f}",
            "-" if r.cost_at_strong_accuracy is None else f"{r.cost_at_strong_accuracy:.6f}",
            "-" if r.decision_ms is None else f"{r.decision_ms:.3f}",
        )
    console.print(table)


def _prompts_from(bench: str | None, prompts: Path | None) -> dict[str, str]:
    """id -> prompt from a benchmark spec or a prompts file (lines, or JSONL with 'prompt')."""
    if bench:
        from evals.benchmarks import load_benchmark

        return {t.id: t.prompt for t in load_benchmark(bench).tasks}
    if prompts is None:
        raise UserError("give --bench BENCH or --prompts FILE")
    if not prompts.is_file():
        raise UserError(f"prompts file not found: {prompts}")
    import json

    out = {}
    for i, line in enumerate(prompts.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                value = json.loads(line)["prompt"] if line.lstrip().startswith("{") else line
            except (json.JSONDecodeError, KeyError):
                raise UserError(f"{prompts}:{i}: expected a JSON object with 'prompt'") from None
            out[str(i)] = value
    return out


@route_app.command("train")
@_friendly
def route_train(
    runs: Annotated[Path, typer.Option(help="Run log with both systems' attempts.")],
    bench: Annotated[str, typer.Option(help="The benchmark the run log is about (for prompts).")],
    strong: Annotated[str, typer.Option(help="Name of the strong system in the run log.")],
    weak: Annotated[str, typer.Option(help="Name of the weak system in the run log.")],
    out: Annotated[Path, typer.Option(help="Folder to save the router in.")],
    router: Annotated[str, typer.Option(help="knn or logistic (on MiniLM embeddings).")] = "knn",
) -> None:
    """Train a router from an eval run log: label = the cheapest system that passed."""
    import numpy as np

    from llm_eff.core.runlog import RunLog
    from routers.embedding import embed
    from routers.knn import TRAINED, save_router
    from routers.training import routing_labels

    if router not in TRAINED:
        raise UserError(f"unknown router '{router}' (trainable: {', '.join(TRAINED)})")
    if not runs.is_file():
        raise UserError(f"run log not found: {runs}")
    labels = routing_labels(RunLog(runs).read(), strong, weak)
    prompts = _prompts_from(bench, None)
    ids = [t for t in labels if t in prompts]
    if not ids:
        raise UserError(f"no task of the run log is in {bench}")
    model = TRAINED[router]().fit(
        embed([prompts[t] for t in ids]), np.array([labels[t] for t in ids], dtype=np.float32)
    )
    save_router(model, out)
    typer.echo(
        f"trained {router} on {len(ids)} tasks ({sum(labels[t] for t in ids)} need "
        f"{strong}); saved to {out}"
    )


@route_app.command("calibrate")
@_friendly
def route_calibrate(
    router: Annotated[Path, typer.Option(help="Folder of a trained router.")],
    strong_share: Annotated[
        float,
        typer.Option(help="Share of calls to send to the strong target, e.g. 0.3.", min=0, max=1),
    ],
    bench: Annotated[str | None, typer.Option(help="Representative prompts: a benchmark.")] = None,
    prompts: Annotated[
        Path | None,
        typer.Option(help="Representative prompts: a file (one per line, or JSONL with 'prompt')."),
    ] = None,
) -> None:
    """Find the threshold that sends the requested share of calls to the strong target."""
    from routers.embedding import embed
    from routers.knn import load_router
    from routers.training import calibrate_threshold

    model = load_router(router)
    texts = list(_prompts_from(bench, prompts).values())
    scores = model.score_vectors(embed(texts))
    threshold = calibrate_threshold(scores.tolist(), strong_share)
    share = float((scores >= threshold).mean())
    typer.echo(
        f"threshold {threshold:.6f}: {share:.1%} of {len(texts)} prompts go strong; "
        f"use model name router-<name>-{threshold:.6f}"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())
