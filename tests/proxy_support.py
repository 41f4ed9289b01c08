"""Real servers on loopback for proxy tests: a fake OpenAI-compatible upstream and the proxy."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


PROXY_TABLES = ("spend_log", "api_keys", "key_budgets", "reservations", "response_cache")


def fresh_database(url: str) -> str:
    """`url` with the proxy's tables dropped (a PostgreSQL server shared by the tests)."""
    from routers.proxy.store import Database

    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for table in PROXY_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
    Database(url).close()
    return url


def start_serve(config: Path, preexec_fn=None) -> tuple[subprocess.Popen, str]:
    """`llm-eff serve --config config` as a real process, once its /health answers: (process,
    base URL). Its stderr goes to `config` with the suffix `.log`, never to a pipe that a
    chatty log could fill."""
    port = free_port()
    exe = Path(sys.executable).with_name("llm-eff")
    log = config.with_suffix(".log")
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [str(exe), "serve", "--config", str(config), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=preexec_fn,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("proxy did not start")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_upstream(delay_s: float = 0.0) -> FastAPI:
    """OpenAI-compatible upstream. Paths: /ok/v1 answers (after `delay_s`), /stall/v1 hangs for
    30 s, /fail/v1 answers HTTP 500. Replies say which model they were asked for."""
    app = FastAPI()
    calls = {"ok": 0, "stall": 0, "fail": 0}
    app.state.calls = calls

    @app.post("/{mode}/v1/chat/completions")
    async def chat(mode: str, request: Request):
        body = await request.json()
        calls[mode] += 1
        if mode == "stall":
            await asyncio.sleep(30)
        if mode == "fail":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if delay_s:
            await asyncio.sleep(delay_s)
        text = f"echo from {body['model']}"
        if body.get("stream"):

            async def events():
                base = {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": body["model"],
                }
                for piece in (text[:5], text[5:]):
                    chunk = {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                        ],
                    }
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield f"data: {json.dumps({**base, 'choices': [], 'usage': USAGE})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": USAGE,
        }

    return app


@contextmanager
def serve_in_thread(app, port: int | None = None):
    """Run an ASGI app with uvicorn in a thread on loopback; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,  # tests leave stalled streams behind
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def scripted_llm(script: dict[str, list[str]], delay_s: float = 0.0) -> FastAPI:
    """OpenAI-compatible server whose replies are scripted per model name: each request to a
    model gets that model's next reply (the last one repeats), after `delay_s`.
    `app.state.prompts` keeps the requests' last user messages, per model; `app.state.peak` the
    most requests it was answering at once."""
    app = FastAPI()
    served: dict[str, int] = {}
    prompts: dict[str, list[str]] = {}
    app.state.prompts, app.state.peak, app.state.open = prompts, 0, 0

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        model = body["model"].split("/")[-1]
        replies = script.get(model) or ["Final Answer: unknown"]
        i = served.get(model, 0)
        served[model] = i + 1
        prompts.setdefault(model, []).append(body["messages"][-1]["content"])
        app.state.open += 1
        app.state.peak = max(app.state.peak, app.state.open)
        await asyncio.sleep(delay_s)
        app.state.open -= 1
        return {
            "id": f"c{i}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": replies[min(i, len(replies) - 1)]},
                }
            ],
            "usage": USAGE,
        }

    return app


def _words(count: int, start: int = 0) -> list[str]:
    return [f"w{i} " for i in range(start, start + count)]


def hostile_upstream() -> FastAPI:
    """An OpenAI-compatible upstream that misbehaves on purpose, by path `/<mode>/v1`:

    - `honest`: writes min(max output asked, 1000) one-word tokens per choice, `n` choices,
      with true usage; with no cap it writes 1000 (`greedy` is the same server).
    - `larger`: honours the larger of `max_tokens` / `max_completion_tokens`.
    - `nousage`: no usage (no final usage chunk when streaming).
    - `negative`: usage with completion_tokens = -1,000,000.
    - `badusage`: non-numeric usage. `array`: a JSON array. `limited`: HTTP 429.
    - `endless`: a 200 response whose body never ends (64 KiB chunks).
    - `slow`: a stream of one word every 50 ms, forever.
    `app.state.seen` keeps each request's body; `app.state.cancelled` the modes whose
    response the client (the proxy) abandoned, with when.
    """
    app = FastAPI()
    seen: list[dict] = []
    cancelled: list[tuple[str, float]] = []
    app.state.seen, app.state.cancelled = seen, cancelled

    def cap_of(body: dict, mode: str) -> int:
        caps = [body.get("max_tokens"), body.get("max_completion_tokens")]
        caps = [c for c in caps if isinstance(c, int)]
        if not caps:
            return 1000
        return max(caps) if mode == "larger" else (body.get("max_tokens") or max(caps))

    @app.post("/{mode}/v1/chat/completions")
    async def chat(mode: str, request: Request):
        body = await request.json()
        seen.append({"mode": mode, **body})
        if mode == "limited":
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429)
        if mode == "array":
            return JSONResponse([1, 2, 3])
        if mode == "endless":

            async def forever():
                chunk = b" " * 65536
                while True:
                    yield chunk
                    await asyncio.sleep(0)

            return StreamingResponse(forever(), media_type="application/json")
        n = body.get("n") or 1
        count = min(cap_of(body, mode), 1000)
        usage = {"prompt_tokens": 10, "completion_tokens": n * count, "total_tokens": 0}
        if mode == "negative":
            usage = {"prompt_tokens": 10, "completion_tokens": -1_000_000}
        elif mode == "badusage":
            usage = {"prompt_tokens": "ten", "completion_tokens": [5]}
        elif mode == "nousage":
            usage = None
        base = {"id": "c1", "created": 0, "model": body["model"]}
        if body.get("stream"):

            async def events():
                try:
                    words = _words(count) if mode != "slow" else None
                    i = 0
                    while True:
                        if words is not None:
                            if i >= len(words):
                                break
                            piece = words[i]
                        else:
                            piece = f"w{i} "
                            await asyncio.sleep(0.05)
                        i += 1
                        choices = [
                            {"index": c, "delta": {"content": piece}, "finish_reason": None}
                            for c in range(n)
                        ]
                        yield f"data: {json.dumps({**base, 'choices': choices})}\n\n"
                    if usage is not None:
                        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
                    yield "data: [DONE]\n\n"
                except BaseException:
                    cancelled.append((mode, time.monotonic()))
                    raise

            return StreamingResponse(events(), media_type="text/event-stream")
        text = "".join(_words(count))
        reply = {
            **base,
            "object": "chat.completion",
            "choices": [
                {
                    "index": c,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": text},
                }
                for c in range(n)
            ],
        }
        if usage is not None:
            reply["usage"] = usage
        return reply

    return app
