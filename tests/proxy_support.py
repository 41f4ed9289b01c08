"""Real servers on loopback for proxy tests: a fake OpenAI-compatible upstream and the proxy."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


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
            app, host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="on"
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


def scripted_llm(script: dict[str, list[str]]) -> FastAPI:
    """OpenAI-compatible server whose replies are scripted per model name: each request to a
    model gets that model's next reply (the last one repeats). `app.state.prompts` keeps the
    requests' last user messages, per model."""
    app = FastAPI()
    served: dict[str, int] = {}
    prompts: dict[str, list[str]] = {}
    app.state.prompts = prompts

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        model = body["model"].split("/")[-1]
        replies = script.get(model) or ["Final Answer: unknown"]
        i = served.get(model, 0)
        served[model] = i + 1
        prompts.setdefault(model, []).append(body["messages"][-1]["content"])
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
