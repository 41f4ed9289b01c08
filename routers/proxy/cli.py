"""`llm-eff serve`, `keys`, `spend`: the router proxy's commands."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_eff.core.cli import Commands, friendly, make_console
from llm_eff.core.errors import UserError

COMMANDS = Commands()


def _proxy_config(config: Path | None, local: str | None) -> Any:
    from routers.proxy.config import load_config, parse_config

    if config is not None:
        return load_config(config)
    if local:
        return parse_config({"upstreams": {local: {"kind": "local", "model": local}}})
    raise UserError("give --config proxy.yaml or --local MODEL")


@COMMANDS.command("serve")
@friendly
def serve_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Proxy YAML: upstreams, "
            "routers, auth, database_url, limits; README 'Router proxy' and "
            "examples/proxy.yaml describe every field.",
        ),
    ] = None,
    local: Annotated[
        str | None,
        typer.Option(help="Serve this local model (e.g. smollm2-135m) with no config file."),
    ] = None,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on (loopback by default; 0.0.0.0 for all)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="debug, info (one line per request: status, upstream, route, tokens, $, ms; "
            "never prompts), warning or error. Default: the config's log_level (info)."
        ),
    ] = None,
) -> None:
    """Start the OpenAI-compatible router proxy (`/v1/chat/completions`, `/v1/models`, ...)."""
    from routers.proxy import create_app
    from routers.proxy.server import serve

    if log_level is not None and log_level not in ("debug", "info", "warning", "error"):
        raise UserError("--log-level must be debug, info, warning or error")
    proxy_config = _proxy_config(config, local)
    app_ = create_app(proxy_config)
    # long-lived server: move start-up objects out of the collector's way (LiteLLM's, imported
    # later on a thread, join them: billing.warm_counter) and collect young objects less often.
    # A request leaves no reference cycle (the retry loop's was the one: tests/test_proxy.py;
    # none found after 3,000 budgeted and streamed requests), so reference counting frees its
    # objects and collections stay rare; each one that comes walks up to 50,000 objects
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    serve(app_, proxy_config, host, port, log_level)


keys_app = typer.Typer(
    help="Virtual API keys of the router proxy (stored hashed).", no_args_is_help=True
)
COMMANDS.group(keys_app, "keys")


def _keystore(config: Path) -> Any:
    from routers.proxy.store import Database, KeyStore

    return KeyStore(Database(_proxy_config(config, None).database_url))


@keys_app.command("create")
@friendly
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
@friendly
def keys_list(config: Annotated[Path, typer.Option("--config", "-c", help="Proxy YAML.")]) -> None:
    """List keys with their budgets, limits and spend."""
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
    make_console().print(table)


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")],
    config: Annotated[Path, typer.Option("--config", "-c", help="Proxy YAML.")],
) -> None:
    """Revoke a key (a running proxy stops accepting it within seconds)."""
    if not _keystore(config).revoke(key_id):
        raise UserError(f"no active key with id '{key_id}'")
    typer.echo(f"revoked {key_id}")


@COMMANDS.command("spend")
@friendly
def spend_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="Proxy YAML.")],
) -> None:
    """Summarise the proxy's spend log: requests, tokens, $, cache hits, $ saved by the cache
    and latency per key and upstream."""
    from rich.table import Table

    from routers.proxy.store import Database

    db = Database(_proxy_config(config, None).database_url)
    rows = db.execute(
        "SELECT COALESCE(key_id, '-'), upstream, COUNT(*), SUM(prompt_tokens), "
        "SUM(completion_tokens), SUM(cost), AVG(latency_ms), AVG(overhead_ms), "
        "SUM(CASE WHEN cache IS NULL THEN 0 ELSE 1 END), COALESCE(SUM(saved), 0) FROM spend_log "
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
        "cache hits",
        "$ saved",
    )
    for key, upstream, n, p, c, cost, lat, over, hits, saved in rows:
        table.add_row(
            key,
            upstream or "-",
            str(n),
            str(p or 0),
            str(c or 0),
            f"{cost or 0:.6f}",
            f"{lat or 0:.1f}",
            f"{over or 0:.2f}",
            str(hits or 0),
            f"{saved or 0:.6f}",
        )
    console = make_console()
    console.print(table)
    served = sum(r[2] for r in rows)
    hits = sum(r[8] or 0 for r in rows)
    if hits:
        saved = sum(float(r[9] or 0) for r in rows)
        spent = sum(float(r[5] or 0) for r in rows)
        console.print(
            f"response cache: {hits} of {served} served requests were hits "
            f"({hits / served:.1%}); ${saved:.6f} saved against ${spent:.6f} spent"
        )
