"""The router proxy as operators and clients meet it: real servers on loopback, the official
`openai` client, a real SQLite (and PostgreSQL when LLM_EFF_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import gc
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from tenacity import AsyncRetrying

from routers.proxy import create_app, parse_config
from routers.proxy.store import Database

from .proxy_support import fake_upstream, fresh_database, serve_in_thread

ADMIN = "admin-secret-123"
PG_URL = os.environ.get("LLM_EFF_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def upstream_url():
    with serve_in_thread(fake_upstream()) as url:
        yield url


def _config(upstream_url: str, db_url: str, **extra) -> dict:
    return {
        "upstreams": {
            "cheap": {
                "kind": "openai",
                "base_url": f"{upstream_url}/ok/v1",
                "model": "cheap-model",
                "prompt_per_m": 0.1,
                "completion_per_m": 0.2,
            },
            "strong": {
                "kind": "openai",
                "base_url": f"{upstream_url}/ok/v1",
                "model": "strong-model",
                "prompt_per_m": 5.0,
                "completion_per_m": 15.0,
            },
            "stalls": {
                "kind": "openai",
                "base_url": f"{upstream_url}/stall/v1",
                "model": "s",
                "timeout_s": 0.5,
                "fallbacks": ["cheap"],
            },
            "broken": {
                "kind": "openai",
                "base_url": f"{upstream_url}/fail/v1",
                "model": "b",
                "retries": 1,
                "fallbacks": ["strong"],
            },
        },
        "routers": {
            "rules": {"kind": "rules", "strong": "strong", "weak": "cheap"},
            "random": {
                "kind": "random",
                "strong": "strong",
                "weak": "cheap",
                "options": {"seed": 1},
            },
        },
        "auth": {"admin_key_env": "LLM_EFF_TEST_ADMIN"},
        "database_url": db_url,
        "flush_interval_s": 0.1,
        "max_body_bytes": 20_000,
        **extra,
    }


DB_PARAMS = ["sqlite"] + (["postgres"] if PG_URL else [])


@pytest.fixture(params=DB_PARAMS)
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spend.db'}"
    return fresh_database(PG_URL)


@pytest.fixture()
def proxy(upstream_url, db_url, monkeypatch):
    monkeypatch.setenv("LLM_EFF_TEST_ADMIN", ADMIN)
    with serve_in_thread(create_app(parse_config(_config(upstream_url, db_url)))) as url:
        yield url, db_url


def _client(url: str, key: str = "anything") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=20)


MSG = [{"role": "user", "content": "hi"}]


def test_chat_stream_models_and_headers(proxy):
    url, _ = proxy
    client = _client(url)
    raw = client.chat.completions.with_raw_response.create(model="cheap", messages=MSG)
    reply = raw.parse()
    assert reply.choices[0].message.content == "echo from cheap-model"
    assert reply.usage.total_tokens == 15
    assert raw.headers["x-llm-eff-upstream"] == "cheap"
    assert float(raw.headers["x-llm-eff-overhead-ms"]) >= 0
    chunks = list(
        client.chat.completions.create(
            model="strong", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo from strong-model" and chunks[-1].usage.completion_tokens == 5
    ids = {m.id for m in client.models.list()}
    assert {"cheap", "strong", "router-rules-0.5", "router-random-0.5"} <= ids
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_routing_by_model_name_and_body_knobs(proxy):
    url, _ = proxy
    client = _client(url)

    def upstream_for(model: str, content: str, **extra) -> str:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": content}], extra_body=extra or None
        )
        return raw.headers["x-llm-eff-upstream"]

    hard = "Explain why this is slow and prove the bound:\n```python\ndef f(n):\n    pass\n```"
    assert upstream_for("router-rules-0.3", "hello there") == "cheap"
    assert upstream_for("router-rules-0.3", hard) == "strong"
    assert upstream_for("router-random-0.0", "x") == "strong"
    assert upstream_for("router-random-1.01", "x") == "cheap"
    assert upstream_for("router-rules-0.3", hard, max_cost_per_million_tokens=1.0) == "cheap"
    assert upstream_for("cheap", "x", route="strong") == "strong"
    metrics = httpx.get(f"{url}/metrics").text
    assert 'llm_eff_proxy_route_decisions_total{router="rules",target="strong"}' in metrics
    assert "llm_eff_proxy_dollars_total" in metrics


def test_fallback_on_timeout_and_5xx(proxy, upstream_url):
    url, _ = proxy
    client = _client(url)
    raw = client.chat.completions.with_raw_response.create(model="stalls", messages=MSG)
    assert raw.headers["x-llm-eff-upstream"] == "cheap"
    raw = client.chat.completions.with_raw_response.create(model="broken", messages=MSG)
    assert raw.headers["x-llm-eff-upstream"] == "strong"
    chunks = list(client.chat.completions.create(model="broken", messages=MSG, stream=True))
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "echo from strong-model"
    )
    assert "llm_eff_proxy_upstream_errors_total" in httpx.get(f"{url}/metrics").text


def test_requests_without_retries_leave_no_retry_state_for_the_collector(proxy):
    """An upstream with `retries: 0` is called once, without tenacity's retry loop: that loop's
    state is a reference cycle, so every request left objects that only a collector pass
    freed, and those passes were the proxy's latency tail (25-65 ms each, measured)."""
    url, _ = proxy
    client = _client(url)

    def live_retry_loops() -> int:
        return sum(isinstance(o, AsyncRetrying) for o in gc.get_objects())

    gc.collect()
    gc.disable()  # garbage in a cycle stays countable until the next collection
    try:
        before = live_retry_loops()
        for _ in range(10):
            client.chat.completions.create(model="cheap", messages=MSG)
        plain = live_retry_loops() - before
        client.chat.completions.create(model="broken", messages=MSG)  # retries: 1, then fallback
        retried = live_retry_loops() - before - plain
    finally:
        gc.enable()
    assert plain == 0
    assert retried >= 1  # the retry path still runs tenacity's loop


def test_bad_requests_get_openai_style_errors(proxy):
    url, _ = proxy
    client = _client(url)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=MSG)
    assert err.value.body["code"] == "model_not_found"
    big = [{"role": "user", "content": "x" * 50_000}]
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="cheap", messages=big)
    assert err.value.status_code == 413
    resp = httpx.post(
        f"{url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"
    resp = httpx.post(f"{url}/v1/chat/completions", json={"model": "cheap", "messages": "hi"})
    assert resp.status_code == 400 and "messages" in resp.json()["error"]["message"]


def _admin(url: str, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", headers={"Authorization": f"Bearer {ADMIN}"}, **kw)


def test_keys_auth_and_revocation(upstream_url, db_url, monkeypatch):
    monkeypatch.setenv("LLM_EFF_TEST_ADMIN", ADMIN)
    config = parse_config(
        _config(
            upstream_url, db_url, auth={"admin_key_env": "LLM_EFF_TEST_ADMIN", "require_keys": True}
        )
    )
    with serve_in_thread(create_app(config)) as url:
        assert httpx.post(f"{url}/admin/keys", json={"name": "x"}).status_code == 401
        created = _admin(url, "POST", "/admin/keys", json={"name": "team-a"}).json()
        no_key = httpx.post(f"{url}/v1/chat/completions", json={"model": "cheap", "messages": MSG})
        assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            _client(url, key="sk-llmeff-wrong").chat.completions.create(model="cheap", messages=MSG)
        good = _client(url, key=created["key"])
        assert good.chat.completions.create(model="cheap", messages=MSG).choices
        listed = _admin(url, "GET", "/admin/keys").json()["data"]
        assert [k["name"] for k in listed] == ["team-a"] and "key" not in listed[0]
        assert _admin(url, "DELETE", f"/admin/keys/{created['id']}").status_code == 200
        with pytest.raises(openai.AuthenticationError):
            good.chat.completions.create(model="cheap", messages=MSG)
    db = Database(db_url)
    stored = db.execute("SELECT key_hash FROM api_keys")
    db.close()
    assert created["key"] not in json.dumps(stored)  # only the hash is stored


def test_budget_holds_under_concurrency(upstream_url, db_url, monkeypatch):
    monkeypatch.setenv("LLM_EFF_TEST_ADMIN", ADMIN)
    config = parse_config(_config(upstream_url, db_url))
    # one request on 'strong' costs (10 * 5 + 5 * 15) / 1e6 = $0.000125 at max_tokens=5; its
    # reservation is larger (the prompt is bounded by the body's bytes)
    per_request = (10 * 5.0 + 5 * 15.0) / 1e6
    budget = per_request * 10 + 1e-12
    with serve_in_thread(create_app(config)) as url:
        key = _admin(
            url, "POST", "/admin/keys", json={"name": "capped", "budget_usd": budget}
        ).json()["key"]
        client = _client(url, key=key)

        def call(_: int) -> int:
            try:
                client.chat.completions.create(model="strong", messages=MSG, max_tokens=5)
                return 200
            except openai.RateLimitError as exc:
                assert exc.body["code"] == "insufficient_quota"
                return 429

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(call, range(50)))
        served = statuses.count(200)
        assert served * per_request <= budget and statuses.count(429) == 50 - served
        # the refusals were the reservation's doing, not lost money: one at a time, requests
        # go on being served while spend + one reservation fits
        while call(0) == 200:
            served += 1
        assert served * per_request <= budget
        worst = client.chat.completions.with_raw_response.create(
            model="cheap", messages=MSG, max_tokens=5
        )
        assert worst.http_response.status_code == 200  # a cheaper upstream still fits
    assert served >= 5, statuses


def test_spend_log_rows(proxy):
    url, db_url = proxy
    client = _client(url)
    for _ in range(3):
        client.chat.completions.create(model="cheap", messages=MSG)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MSG)
    import time

    time.sleep(0.4)  # two flush intervals
    db = Database(db_url)
    rows = db.execute(
        "SELECT upstream, prompt_tokens, completion_tokens, cost, status FROM spend_log"
    )
    db.close()
    ok = [r for r in rows if r[4] == 200]
    assert len(ok) == 3 and all(r[0] == "cheap" and r[1] == 10 and r[2] == 5 for r in ok)
    assert ok[0][3] == pytest.approx((10 * 0.1 + 5 * 0.2) / 1e6)
    from routers.proxy.store import spend_attempts

    attempts = spend_attempts(db_url)  # what `llm-eff report --spend-db URL` reads
    assert len(attempts) == len(rows) and sum(a.passed for a in attempts) == 3
    assert {a.system for a in attempts if a.passed} == {"cheap"}
