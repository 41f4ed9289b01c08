"""Backends: a tiny local Llama through transformers, and LiteLLM against a real loopback server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llm_eff.backends import GenerationConfig
from llm_eff.backends.base import truncate_at_stop, user_chat
from llm_eff.backends.litellm_backend import LiteLLMBackend, check_api_key
from llm_eff.backends.transformers_backend import TransformersBackend
from llm_eff.core import UserError
from llm_eff.models import parse_model


def test_transformers_backend_counts_tokens_and_prices(tiny_model):
    model, tok = tiny_model
    backend = TransformersBackend(
        parse_model("tiny-llama"), batch_size=2, model=model, tokenizer=tok
    )
    prompts = ["def add(a, b):", "Write a function", "class Foo"]
    out = backend.generate(
        [user_chat(p) for p in prompts],
        GenerationConfig(max_new_tokens=6, n=2, temperature=0.9, seed=3),
    )
    assert [len(g) for g in out] == [2, 2, 2]
    for prompt, group in zip(prompts, out, strict=True):
        chat = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        expected_prompt = len(tok(chat, add_special_tokens=False)["input_ids"])
        for c in group:
            assert c.usage.prompt_tokens == expected_prompt
            assert 1 <= c.usage.completion_tokens <= 6
            assert c.cost.dollars > 0 and c.cost.source.startswith("local@")
            assert c.usage.peak_memory_bytes and c.usage.flops_estimate > 0


def test_greedy_is_deterministic(tiny_model):
    model, tok = tiny_model
    backend = TransformersBackend(parse_model("tiny-llama"), model=model, tokenizer=tok)
    config = GenerationConfig(max_new_tokens=8)
    a = backend.generate([user_chat("hello")], config)[0][0].text
    b = backend.generate([user_chat("hello")], config)[0][0].text
    assert a == b


def test_transformers_backend_times_each_answer(tiny_model):
    """TTFT and TPOT per answer from the generation steps' clock: the first token comes before
    the batch is done, a longer answer's last token later than a shorter one's, and the batch
    rate is the tokens it processed over its wall time."""
    model, tok = tiny_model
    backend = TransformersBackend(
        parse_model("tiny-llama"), batch_size=4, model=model, tokenizer=tok
    )
    out = backend.generate(
        [user_chat(p) for p in ("def add(a, b):", "Write a long story", "x", "class Foo")],
        GenerationConfig(max_new_tokens=12, temperature=1.0, seed=5),
    )
    answers = [group[0] for group in out]
    wall = answers[0].usage.latency_s
    processed = sum(a.usage.prompt_tokens + a.usage.completion_tokens for a in answers)
    for a in answers:
        u = a.usage
        assert 0 < u.ttft_s < wall and u.ttft_s == answers[0].usage.ttft_s  # one prefill
        if u.completion_tokens > 1:
            assert u.tpot_s > 0 and u.ttft_s + u.tpot_s * (u.completion_tokens - 1) <= wall
        assert u.batch_tokens_per_s == pytest.approx(processed / wall, rel=0.01)


def test_truncate_at_stop():
    assert truncate_at_stop("abc\n```\nmore", ("\n```\n",)) == "abc"
    assert truncate_at_stop("abc", ("zz",)) == "abc"


class _FakeOpenAI(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeOpenAI.requests.append(body)
        n = body.get("n", 1)
        reply = {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"answer {i}"},
                }
                for i in range(n)
            ],
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 20 * n,
                "total_tokens": 100 + 20 * n,
            },
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture()
def openai_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_litellm_backend_over_http(openai_server: str):
    backend = LiteLLMBackend(
        "openai/gpt-4o-mini", api_base=openai_server, api_key="sk-test", retries=0
    )
    out = backend.generate(
        [user_chat("q1"), user_chat("q2")], GenerationConfig(max_new_tokens=30, n=2)
    )
    assert [[c.text for c in g] for g in out] == [["answer 0", "answer 1"]] * 2
    c = out[0][0]
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (50, 20)
    # gpt-4o-mini in LiteLLM's map: $0.15 / 1M prompt, $0.60 / 1M completion; split over 2 choices
    assert c.cost.dollars == pytest.approx((100 * 0.15 + 40 * 0.60) / 1e6 / 2, rel=1e-6)
    assert _FakeOpenAI.requests[-1]["max_tokens"] == 30


def test_openai_compatible_server_needs_no_key(openai_server: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    backend = LiteLLMBackend("openai/my-local-model", api_base=openai_server, retries=0)
    out = backend.generate([user_chat("q")], GenerationConfig(max_new_tokens=5))
    assert out[0][0].text == "answer 0" and out[0][0].cost.source == "unpriced"


def test_missing_api_key_is_a_user_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        check_api_key("openai/gpt-4o-mini")
    check_api_key("openai/gpt-4o-mini", api_base="http://127.0.0.1:1/v1")  # local server: fine


def test_backend_answers_whole_conversations_and_refuses_bare_strings(tiny_model):
    """A chat's every turn reaches the model (in its chat template); a string is refused."""
    model, tok = tiny_model
    backend = TransformersBackend(parse_model("tiny-llama"), model=model, tokenizer=tok)
    chat = [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Pick a number."},
        {"role": "assistant", "content": "Seven."},
        {"role": "user", "content": "And the one after it?"},
    ]
    config = GenerationConfig(max_new_tokens=4)
    (whole,), (last,) = backend.generate([chat, chat[-1:]], config)
    template = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert whole.usage.prompt_tokens == len(tok(template, add_special_tokens=False)["input_ids"])
    assert whole.usage.prompt_tokens > last.usage.prompt_tokens
    with pytest.raises(TypeError, match="user_chat"):
        backend.generate(["a bare prompt"], config)
    with pytest.raises(TypeError, match="role"):
        backend.generate([[{"role": "robot", "content": "x"}]], config)
