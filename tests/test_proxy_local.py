"""The local upstream as clients meet it through the proxy: tokens stream as they are
generated, a short request is not stuck behind a long one (continuous batching), a client
that hangs up stops the generation. A tiny random-weight Llama built in code, real HTTP."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pytest

from llm_eff.core.types import Usage
from routers.proxy import create_app, parse_config

from .proxy_support import serve_in_thread


@contextmanager
def _local_proxy(folder: Path, model: str, cap: int):
    """The proxy on loopback with one local upstream `tiny`: (URL, upstream, spend DB)."""
    db = folder / "spend.db"
    config = parse_config(
        {
            "upstreams": {"tiny": {"kind": "local", "model": model, "max_output_tokens": cap}},
            "database_url": f"sqlite:///{db}",
            "log_level": "warning",
        }
    )
    app = create_app(config)
    with serve_in_thread(app) as url:
        yield url, app.proxy.upstreams["tiny"], db


@pytest.fixture(scope="module")
def local_proxy(tmp_path_factory):
    with _local_proxy(tmp_path_factory.mktemp("local"), "tiny-llama", 1500) as served:
        yield served


def _chat(url: str, max_tokens: int, **extra) -> httpx.Response:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(
        f"{url}/v1/chat/completions", json={**body, "max_tokens": max_tokens}, timeout=60
    )


def _latency(url: str) -> float:
    started = time.perf_counter()
    r = _chat(url, 1)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 1
    return time.perf_counter() - started


def _stream(
    url: str, max_tokens: int, on_chunk=None, prompt: str = "hi"
) -> tuple[list[float], int]:
    """Arrival times of the content chunks of one greedy streamed answer, and its token count."""
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    arrivals, started, tokens = [], time.perf_counter(), 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"usage"' in line:
                tokens = json.loads(line[6:])["usage"]["completion_tokens"]
            elif line.startswith("data: {") and '"content"' in line:
                arrivals.append(time.perf_counter() - started)
                if on_chunk is not None and on_chunk(len(arrivals)):
                    break
    return arrivals, tokens


def test_short_request_is_not_stuck_behind_a_long_generation(local_proxy):
    """Short answers finish while a long one is still streaming: they are batched beside it,
    not queued behind it (one lock would finish them only after its last token)."""
    url, *_ = local_proxy
    long_chunks: list[float] = []  # when each chunk of the long answer arrived
    started = threading.Event()

    def on_chunk(n: int) -> bool:
        long_chunks.append(time.perf_counter())
        if n == 5:
            started.set()
        return False

    long_done: list[tuple[list[float], int]] = []
    runner = threading.Thread(target=lambda: long_done.append(_stream(url, 1500, on_chunk)))
    runner.start()
    assert started.wait(60)
    short_done = []
    for _ in range(7):
        _latency(url)
        short_done.append(time.perf_counter())
    runner.join()
    assert long_done[0][1] == 1500
    after = [t for t in long_chunks if t > short_done[-1]]
    assert len(after) >= 5, (len(after), len(long_chunks))  # still streaming after the shorts


def test_tokens_stream_as_they_are_generated(local_proxy):
    url, *_ = local_proxy
    arrivals, tokens = _stream(url, 120)
    assert tokens == 120 and len(arrivals) >= 30  # a chunk per token (whole characters)
    assert arrivals[0] < arrivals[-1] / 2, (arrivals[0], arrivals[-1])


def test_a_client_that_hangs_up_stops_the_generation(local_proxy):
    """Cancelled at once, and billed for the tokens generated, counted by the model itself."""
    url, upstream, db = local_proxy
    _stream(url, 1500, on_chunk=lambda n: n >= 5)  # read 5 chunks, then hang up
    deadline = time.monotonic() + 2
    while upstream.busy() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not upstream.busy()  # 1,500 tokens take seconds; cancelled, it is idle at once
    query = "SELECT completion_tokens, usage_source FROM spend_log WHERE status = 499"
    rows: list = []
    while not rows and time.monotonic() < deadline + 5:  # the spend log is written behind
        time.sleep(0.05)
        with closing(sqlite3.connect(db)) as conn:
            rows = conn.execute(query).fetchall()
    assert len(rows) == 1 and rows[0][1] == "upstream" and 5 <= rows[0][0] < 1500, rows


def test_lengths_are_capped_and_stop_strings_end_the_answer(local_proxy):
    url, *_ = local_proxy
    r = _chat(url, 5000)  # above the upstream's cap of 1,500
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 1500
    text = _chat(url, 50).json()["choices"][0]["message"]["content"]
    stop = text[10:12]
    cut = _chat(url, 50, stop=[stop]).json()["choices"][0]
    assert cut["message"]["content"] == text[: text.find(stop)]
    assert cut["finish_reason"] == "stop"


def test_serve_local_listens_on_loopback_by_default(tmp_path: Path):
    from .conftest import cli

    helped = cli("serve", "--help")
    assert helped.returncode == 0 and "127.0.0.1" in helped.stdout


def test_the_official_client_gets_chat_and_stream_with_usage(local_proxy):
    import openai

    url, *_ = local_proxy
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "hello"}]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=5)
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens == 5
    chunks = list(
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=5, stream=True)
    )
    assert chunks[-1].usage.completion_tokens == 5
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content  # greedy: the same answer both ways


def test_a_conversation_reaches_the_model_whole(local_proxy):
    """System, user and assistant turns all go through the chat template: the prompt is longer
    by the assistant turn, and the greedy answer depends on what the assistant said before."""
    url, upstream, _ = local_proxy

    def ask(said: str) -> dict:
        messages = [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Pick a colour."},
            {"role": "assistant", "content": said},
            {"role": "user", "content": "Say it again."},
        ]
        r = httpx.post(
            f"{url}/v1/chat/completions",
            timeout=60,
            json={"model": "tiny", "messages": messages, "max_tokens": 8},
        )
        assert r.status_code == 200, r.text
        return r.json()

    blue, long = ask("blue"), ask("a deep ultramarine blue, like the evening sea")
    without = upstream._encode([{"role": "user", "content": "Say it again."}])
    assert blue["usage"]["prompt_tokens"] > len(without)
    extra = len(upstream.tokenizer("a deep ultramarine blue, like the evening sea")["input_ids"])
    grown = long["usage"]["prompt_tokens"] - blue["usage"]["prompt_tokens"]
    assert grown >= extra - len(upstream.tokenizer("blue")["input_ids"]) - 1
    answers = {ask(said)["choices"][0]["message"]["content"] for said in ("blue", "red", "green")}
    assert len(answers) > 1  # the earlier assistant turn changes the answer


def test_a_quantized_local_upstream_answers(tmp_path: Path):
    """`model: tiny-llama:quant=int4` serves through the proxy like the float model."""
    config = parse_config(
        {
            "upstreams": {"q": {"kind": "local", "model": "tiny-llama:quant=int4"}},
            "database_url": f"sqlite:///{tmp_path / 'spend.db'}",
            "log_level": "warning",
        }
    )
    app = create_app(config)
    from optimum.quanto import QLinear

    layer = app.proxy.upstreams["q"].model.get_submodule("model.layers.0.mlp.up_proj")
    assert isinstance(layer, QLinear)
    with serve_in_thread(app) as url:
        body = {"model": "q", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert 1 <= r.json()["usage"]["completion_tokens"] <= 4


@pytest.fixture(scope="module")
def llamacpp_proxy(tmp_path_factory):
    """The embedded SmolLM2 GGUF on the llama.cpp engine (the default for it when installed)."""
    from llm_eff.backends.llamacpp_backend import available

    if not available():
        pytest.skip("the llama.cpp engine (xllamacpp) is not installed")
    with _local_proxy(tmp_path_factory.mktemp("llamacpp"), "smollm2-135m", 300) as served:
        yield served[:2]


def test_llamacpp_upstream_streams_as_it_decodes_and_bills(llamacpp_proxy):
    url, upstream = llamacpp_proxy
    assert type(upstream).__name__ == "LlamaCppUpstream"
    arrivals, tokens = _stream(url, 200, prompt="Count from 1 to 1000, one number per line.")
    assert len(arrivals) >= 50 and 50 <= tokens <= 200, (len(arrivals), tokens)
    assert arrivals[0] < arrivals[-1] / 2, (arrivals[0], arrivals[-1])  # not all at the end
    r = _chat(url, 5000)  # above the upstream's cap of 300
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 300
    assert r.json()["model"] == "smollm2-135m"  # not the server's file path
    assert upstream.cost(Usage(prompt_tokens=10, completion_tokens=10, latency_s=1.0)).dollars > 0


def test_llamacpp_upstream_stops_for_a_client_that_hangs_up(llamacpp_proxy):
    url, upstream = llamacpp_proxy
    prompt = "Count from 1 to 1000, one number per line."  # ~3 s of output at the cap of 300
    body = {"model": "tiny", "messages": [{"role": "user", "content": prompt}]}
    seen = []
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=60
    ) as r:
        for line in r.iter_lines():
            if '"content"' in line:
                seen.append(line)
            if len(seen) >= 3:
                break  # hang up while 300 tokens are still to come
    deadline = time.monotonic() + 1
    while upstream.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not upstream.busy()  # the slot stopped decoding for the gone client
