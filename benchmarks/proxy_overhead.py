"""Proxy overhead: what the router proxy adds on top of a fixed-latency upstream.

    .venv/bin/python benchmarks/proxy_overhead.py [--concurrency 10 100 200] [--seconds 4]
        [--rounds 2] [--upstream-ms 20] [--litellm-bin /path/to/litellm] [--soak-seconds 300]
        [--postgres-url postgresql://...] [--rate 500] [--pin]

Starts, each in its own process: an OpenAI-compatible upstream that answers every request after
`--upstream-ms` (JSON, or SSE with `--stream`), `llm-eff serve` in front of it, and, when
`--litellm-bin` points at a LiteLLM proxy (`pip install 'litellm[proxy]'`), the LiteLLM proxy
in front of the same upstream. Then, for each concurrency level, rounds of fixed-length bursts
interleave the targets: direct, llm-eff pass-through, llm-eff with the rule router, llm-eff
with a budgeted key (SQLite; PostgreSQL too with `--postgres-url`), LiteLLM.
It prints requests/s and latency p50/p95/p99 per target, and the added latency: each target's
percentile minus the direct percentile of the same round set; for llm-eff also the proxy's own
per-request overhead header. `--rate R` makes the load open-loop: R requests/s arrive
whatever the answers, over at most `--concurrency` connections; that measures the latency a
proxy adds at a load the machine carries (the closed loop measures it at saturation, where it
is queueing). `--pin` puts each proxy on the second CPU and this load generator and the
upstream on the first, so that a proxy is not measured on a core its own load generator holds
(a production proxy is not); the PostgreSQL server is not started here: pin it with taskset.
`--soak-seconds` runs a steady load through llm-eff and prints the proxy's RSS at start and
end. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table

# the start of every benchmark upstream's ASGI app: the request body in `body`
APP_HEAD = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
"""
UPSTREAM_APP = (
    """
import asyncio, json, os
DELAY = float(os.environ["UPSTREAM_DELAY_S"])
BODY = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}).encode()
CHUNK_BODY = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
    "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]}
LAST_BODY = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
    "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}
CHUNK = b"data: " + json.dumps(CHUNK_BODY).encode() + b"\\n\\n"
LAST = b"data: " + json.dumps(LAST_BODY).encode() + b"\\n\\ndata: [DONE]\\n\\n"
"""
    + APP_HEAD
    + """\
    await asyncio.sleep(DELAY)
    if b'"stream": true' in body or b'"stream":true' in body:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": LAST})
    else:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": BODY})
"""
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    """Wait until `url` answers (any status)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.25)
    raise SystemExit(f"{url} did not come up")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    """Percentile by nearest rank (values in ms)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def burst(
    url: str,
    model: str,
    concurrency: int,
    seconds: float,
    stream: bool,
    headers: dict[str, str],
    rate: float | None = None,
) -> tuple[list[float], list[float], int]:
    """Load with aiohttp over `concurrency` connections: (latencies ms, proxy overhead ms from
    headers, errors). Closed loop (each connection sends again as soon as it is answered)
    unless `rate` is given: then requests arrive at that many per second (Poisson, seeded),
    whether or not earlier ones are answered, and each latency counts from the request's
    arrival, so time spent waiting for a free connection is in it."""
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 2,
            "stream": stream,
        }
    ).encode()
    # the load generator's own collector pauses would land in every target's tail alike:
    # collect before the burst, not during it (a burst is seconds; memory stays bounded)
    gc.collect()
    gc.disable()
    try:
        return await _send(url, body, concurrency, seconds, headers, rate)
    finally:
        gc.enable()


async def _send(
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    headers: dict[str, str],
    rate: float | None,
) -> tuple[list[float], list[float], int]:
    """The burst itself (see `burst`)."""
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"Content-Type": "application/json", **headers},
    ) as session:
        deadline = time.perf_counter() + seconds

        async def one(arrived: float) -> None:
            nonlocal errors
            try:
                async with session.post(f"{url}/chat/completions", data=body) as r:
                    await r.read()
                    status, overhead = r.status, r.headers.get("x-llm-eff-overhead-ms")
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
                return
            if status != 200:
                errors += 1
                return
            latencies.append((time.perf_counter() - arrived) * 1000)
            if overhead is not None:
                overheads.append(float(overhead))

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one(time.perf_counter())

        if rate is None:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            arrivals = random.Random(0)
            sent: list[asyncio.Task] = []
            at = time.perf_counter()
            while at < deadline:
                wait = at - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                sent.append(asyncio.create_task(one(at)))
                at += arrivals.expovariate(rate)
            await asyncio.gather(*sent)
    return latencies, overheads, errors


def budgeted_key(db_url: str) -> dict[str, str]:
    """Authorization headers of a new key with a $1,000,000 budget in the proxy's database."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from routers.proxy.store import Database, KeyStore

    db = Database(db_url)
    try:
        key, _ = KeyStore(db).create("bench", 1_000_000.0)
    finally:
        db.close()
    return {"Authorization": f"Bearer {key}"}


def start(
    cmd: list[str], env: dict[str, str] | None = None, cpus: set[int] | None = None
) -> subprocess.Popen:
    """A server process in its own session, on `cpus` when given (else this process's)."""
    return subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
    )


def start_app(source: str, folder: Path, env: dict[str, str] | None = None) -> tuple:
    """An ASGI app written as `source` into `folder`, served by uvicorn in its own process:
    (process, port)."""
    port = free_port()
    (folder / "upstream_app.py").write_text(source)
    command = [sys.executable, "-m", "uvicorn", "upstream_app:app", "--port", str(port)]
    command += ["--log-level", "error", "--no-access-log", "--app-dir", str(folder)]
    return start(command, env), port


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 100, 200])
    parser.add_argument(
        "--postgres-url", help="also run llm-eff on this PostgreSQL with a budgeted key"
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--upstream-ms", type=float, default=20.0)
    parser.add_argument("--stream", action="store_true", help="SSE instead of JSON")
    parser.add_argument("--litellm-bin", default=shutil.which("litellm"))
    parser.add_argument("--soak-seconds", type=float, default=0.0)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="proxies on CPU 1; the load generator and the upstream on CPU 0",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: this many requests/s arrive (Poisson) over the level's connections,"
        " instead of each connection sending again as soon as it is answered",
    )
    args = parser.parse_args()
    console = Console(width=200)
    proxy_cpus: set[int] | None = None
    if args.pin:
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            raise SystemExit("--pin needs two CPUs: one for the proxy, one for the load")
        proxy_cpus = {available[1]}
        os.sched_setaffinity(0, {available[0]})  # the load, and the upstream started below
    tmp = Path(tempfile.mkdtemp(prefix="llm-eff-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        proxy_port = free_port()
        upstream_proc, up_port = start_app(
            UPSTREAM_APP, tmp, {"UPSTREAM_DELAY_S": str(args.upstream_ms / 1000)}
        )
        procs.append(upstream_proc)
        upstream = f"http://127.0.0.1:{up_port}/v1"
        cfg = tmp / "proxy.yaml"
        cfg.write_text(
            f"upstreams:\n  up: {{kind: openai, base_url: '{upstream}', model: m, "
            "prompt_per_m: 1.0, completion_per_m: 2.0}\n"
            "  up2: {kind: openai, base_url: '" + upstream + "', model: m2, prompt_per_m: 5.0,"
            " completion_per_m: 10.0}\n"
            "routers:\n  rules: {kind: rules, strong: up2, weak: up}\n"
            f"database_url: 'sqlite:///{tmp / 'spend.db'}'\n"
            # keyless pass-through next to the budgeted key
            "auth: {allow_anonymous: true}\n"
        )
        exe = str(Path(sys.executable).with_name("llm-eff"))
        # a budgeted key (large enough never to run out): its requests reserve and settle in
        # the ledger, one committed transaction each
        budgeted = budgeted_key(f"sqlite:///{tmp / 'spend.db'}")
        serve = [exe, "serve", "--config"]
        procs.append(start([*serve, str(cfg), "--port", str(proxy_port)], cpus=proxy_cpus))
        proxy = procs[-1]
        wait_up(f"http://127.0.0.1:{up_port}/", procs[0])
        wait_up(f"http://127.0.0.1:{proxy_port}/health", proxy)
        proxy_url = f"http://127.0.0.1:{proxy_port}/v1"
        targets = [
            ("direct", upstream, "m", {}),
            ("llm-eff pass-through", proxy_url, "up", {}),
            ("llm-eff rule router", proxy_url, "router-rules-0.5", {}),
            ("llm-eff budgeted key, SQLite", proxy_url, "up", budgeted),
        ]
        if args.postgres_url:
            pg_port = free_port()
            pg_cfg = tmp / "proxy-pg.yaml"
            pg_cfg.write_text(
                cfg.read_text().replace(
                    f"database_url: 'sqlite:///{tmp / 'spend.db'}'",
                    f"database_url: '{args.postgres_url}'",
                )
            )
            pg_key = budgeted_key(args.postgres_url)
            procs.append(start([*serve, str(pg_cfg), "--port", str(pg_port)], cpus=proxy_cpus))
            wait_up(f"http://127.0.0.1:{pg_port}/health", procs[-1])
            targets.append(
                ("llm-eff budgeted key, PostgreSQL", f"http://127.0.0.1:{pg_port}/v1", "up", pg_key)
            )
        if args.litellm_bin:
            lite_port = free_port()
            (tmp / "litellm.yaml").write_text(
                "model_list:\n  - model_name: up\n    litellm_params:\n"
                f"      model: openai/m\n      api_base: {upstream}\n      api_key: x\n"
            )
            master = "sk-" + secrets.token_hex(16)
            procs.append(
                start(
                    [
                        args.litellm_bin,
                        "--config",
                        str(tmp / "litellm.yaml"),
                        "--port",
                        str(lite_port),
                    ],
                    {"LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": master},
                    proxy_cpus,
                )
            )
            wait_up(f"http://127.0.0.1:{lite_port}/health/liveliness", procs[-1], 180)
            targets.append(
                (
                    "LiteLLM proxy",
                    f"http://127.0.0.1:{lite_port}",
                    "up",
                    {"Authorization": f"Bearer {master}"},
                )
            )
        else:
            console.print(
                "[yellow]LiteLLM proxy not found (pass --litellm-bin): compared without it"
            )
        console.print(
            f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; upstream {args.upstream_ms:g} ms, "
            f"{'SSE' if args.stream else 'JSON'}, {args.rounds} x {args.seconds:g} s per "
            "target and level, interleaved, "
            + (f"open loop at {args.rate:g} req/s" if args.rate else "closed loop")
            + (
                f"; proxies on CPU {min(proxy_cpus)}, load and upstream on CPU "
                f"{min(os.sched_getaffinity(0))}"
                if proxy_cpus
                else "; no CPU pinning"
            )
        )
        rss_start = rss_mb(proxy.pid)
        table = Table(
            "clients",
            "target",
            "req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "added p50",
            "added p95",
            "added p99",
            "proxy own p50/p99",
            "errors",
        )
        for concurrency in args.concurrency:
            results = {name: ([], [], 0, 0.0) for name, *_ in targets}
            for _ in range(args.rounds):
                for name, url, model, headers in targets:
                    time.sleep(1.0)  # the last target's background work ends before this one
                    lat, over, err = asyncio.run(
                        burst(
                            url, model, concurrency, args.seconds, args.stream, headers, args.rate
                        )
                    )
                    old = results[name]
                    results[name] = (
                        old[0] + lat,
                        old[1] + over,
                        old[2] + err,
                        old[3] + args.seconds,
                    )
            base = results["direct"][0]
            for name, (lat, over, err, secs) in results.items():
                added = [pct(lat, q) - pct(base, q) for q in (50, 95, 99)]
                own = f"{pct(over, 50):.2f} / {pct(over, 99):.2f}" if over else "-"
                table.add_row(
                    str(concurrency),
                    name,
                    f"{len(lat) / secs:,.0f}",
                    *[f"{pct(lat, q):.1f}" for q in (50, 95, 99)],
                    *(["-"] * 3 if name == "direct" else [f"{a:+.2f}" for a in added]),
                    own,
                    str(err),
                )
        console.print(table)
        if args.soak_seconds:
            console.print(f"soak: {args.soak_seconds:g} s at 100 clients through llm-eff ...")
            before = rss_mb(proxy.pid)
            lat, _, err = asyncio.run(
                burst(
                    f"http://127.0.0.1:{proxy_port}/v1",
                    "up",
                    100,
                    args.soak_seconds,
                    args.stream,
                    {},
                )
            )
            console.print(
                f"proxy RSS: {rss_start:.1f} MiB at start, {before:.1f} MiB before the "
                f"soak, {rss_mb(proxy.pid):.1f} MiB after {len(lat):,} requests "
                f"({err} errors)"
            )
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
