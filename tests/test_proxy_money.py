"""Money the proxy cannot lose: each attack of the hostile review, against a real misbehaving
upstream on loopback, the real proxy, the official `openai` client and raw sockets.

Prices here are $1,000 per million completion tokens ($0.001 a token) and free prompts unless
a test says otherwise, so a $1 budget is 1,000 output tokens. The bound every budget test
states: spend <= budget exactly (reservations are integer nano-dollars rounded up and the
hostile upstream honours the cap the proxy sends), i.e. an overrun bound of $0.
"""

from __future__ import annotations

import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from routers.proxy import create_app, parse_config
from routers.proxy.store import Database, KeyStore

from .proxy_support import fresh_database, hostile_upstream, serve_in_thread

ADMIN = "admin-secret-456"
MSG = [{"role": "user", "content": "hi"}]
PG_URL = os.environ.get("LLM_EFF_TEST_POSTGRES_URL")
PER_TOKEN = 1000.0 / 1e6


@pytest.fixture(scope="module")
def hostile():
    app = hostile_upstream()
    with serve_in_thread(app) as url:
        yield url, app


def _upstream(url: str, mode: str, **extra) -> dict:
    return {
        "kind": "openai",
        "base_url": f"{url}/{mode}/v1",
        "model": f"{mode}-model",
        "prompt_per_m": 0.0,
        "completion_per_m": 1000.0,
        **extra,
    }


def _config(url: str, db_url: str, **extra) -> dict:
    modes = ("honest", "larger", "nousage", "negative", "badusage", "slow")
    ups = {m: _upstream(url, m) for m in modes}
    ups["slow"]["timeout_s"] = 1.0
    ups["array"] = _upstream(url, "array", fallbacks=["honest"])
    ups["limited"] = _upstream(url, "limited", fallbacks=["honest"])
    ups["endless"] = _upstream(url, "endless", fallbacks=["honest"], timeout_s=20)
    ups["limited_only"] = _upstream(url, "limited")
    ups["array_only"] = _upstream(url, "array")
    return {
        "upstreams": ups,
        "auth": {"admin_key_env": "LLM_EFF_MONEY_ADMIN"},
        "database_url": db_url,
        "flush_interval_s": 0.1,
        "default_max_tokens": 100,
        "max_upstream_body_bytes": 200_000,
        **extra,
    }


@pytest.fixture
def proxy(request, hostile, tmp_path: Path, monkeypatch):
    """The proxy on SQLite, or on PostgreSQL for tests parametrized with `backend`."""
    monkeypatch.setenv("LLM_EFF_MONEY_ADMIN", ADMIN)
    url, app = hostile
    db_url = f"sqlite:///{tmp_path / 'spend.db'}"
    if getattr(request, "param", "sqlite") == "postgres":
        db_url = fresh_database(PG_URL)
    with serve_in_thread(create_app(parse_config(_config(url, db_url)))) as proxy_url:
        yield proxy_url, db_url, app


def _key(url: str, budget: float | None = 1.0) -> str:
    spec = {"name": "k"} if budget is None else {"name": "k", "budget_usd": budget}
    r = httpx.post(f"{url}/admin/keys", json=spec, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


def _spent(db_url: str) -> dict[str, float]:
    db = Database(db_url)
    try:
        store = KeyStore(db)
        ledger = {r.id: store.spent_usd(r.id) for r in store.all() if r.budget_usd is not None}
        logged = store.spent()
    finally:
        db.close()
    return {"ledger": sum(v or 0 for v in ledger.values()), "log": sum(logged.values())}


def _rows(db_url: str, where: str = "1=1") -> list[tuple]:
    db = Database(db_url)
    try:
        return db.execute(
            "SELECT upstream, status, completion_tokens, cost, usage_source, fallback_from, "
            f"error FROM spend_log WHERE {where} ORDER BY ts"
        )
    finally:
        db.close()


def _until_refused(client: openai.OpenAI, limit: int = 200, **kwargs) -> int:
    served = 0
    for _ in range(limit):
        try:
            client.chat.completions.create(messages=MSG, **kwargs)
            served += 1
        except openai.RateLimitError as exc:
            assert exc.body["code"] == "insufficient_quota"
            return served
    raise AssertionError("never refused")


@pytest.mark.parametrize("proxy", ["sqlite"] + (["postgres"] if PG_URL else []), indirect=True)
def test_no_max_tokens_the_proxy_sets_the_cap_and_the_budget_holds(proxy):
    url, db_url, app = proxy
    client = _client(url, _key(url, budget=1.0))
    served = _until_refused(client, model="honest")  # writes 1,000 tokens unless capped
    asked = [s.get("max_tokens") for s in app.state.seen[-served:]]
    assert asked == [100] * served  # the proxy's own cap went upstream
    time.sleep(0.2)
    spent = _spent(db_url)
    assert served == 10 and spent["ledger"] <= 1.0 + 1e-9
    assert spent["ledger"] == pytest.approx(1.0)
    assert spent["log"] == pytest.approx(spent["ledger"])


@pytest.mark.parametrize("proxy", ["sqlite"] + (["postgres"] if PG_URL else []), indirect=True)
def test_n_and_both_caps_are_reserved(proxy):
    url, db_url, _ = proxy
    client = _client(url, _key(url, budget=1.0))
    assert _until_refused(client, model="honest", n=30, max_tokens=10) == 3  # 300 tokens each
    other = _client(url, _key(url, budget=1.0))
    # an upstream that honours the larger cap: 200 tokens each, 5 fit
    served = _until_refused(other, model="larger", max_tokens=1, max_completion_tokens=200)
    assert served == 5
    assert _spent(db_url)["ledger"] <= 2.0 + 1e-9


@pytest.mark.parametrize("mode", ["nousage", "negative", "badusage"])
@pytest.mark.parametrize("stream", [False, True])
def test_missing_or_forged_usage_is_billed_by_counting(proxy, mode: str, stream: bool):
    url, db_url, _ = proxy
    client = _client(url, _key(url, budget=1.0))
    served = 0
    for _ in range(100):
        try:
            if stream:
                chunks = client.chat.completions.create(
                    model=mode, messages=MSG, max_tokens=50, stream=True
                )
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            else:
                reply = client.chat.completions.create(model=mode, messages=MSG, max_tokens=50)
                text = reply.choices[0].message.content
            assert text.startswith("w0 w1")
            served += 1
        except openai.RateLimitError:
            break
    deadline = time.monotonic() + 5  # each row is written as its answer settles, just after
    while len(rows := [r for r in _rows(db_url) if r[1] == 200]) < served:
        assert time.monotonic() < deadline, (served, rows)
        time.sleep(0.05)
    assert served == len(rows) and 5 <= served < 100  # billed, so the budget ran out
    assert all(r[4] == "proxy-count" and r[2] > 0 and r[3] > 0 for r in rows), rows
    assert _spent(db_url)["ledger"] <= 1.0 + 1e-9


def test_fallback_on_429_malformed_and_endless_answers(proxy):
    url, db_url, _ = proxy
    client = _client(url, _key(url, budget=None))
    for mode in ("array", "limited", "endless"):
        started = time.monotonic()
        reply = client.chat.completions.with_raw_response.create(
            model=mode, messages=MSG, max_tokens=5
        )
        assert reply.http_response.status_code == 200, mode
        assert reply.headers["x-llm-eff-upstream"] == "honest", mode
        assert time.monotonic() - started < 10, mode
    time.sleep(0.3)
    failed_over = {r[5].split(":")[0] for r in _rows(db_url) if r[5]}
    assert failed_over == {"array", "limited", "endless"}
    # a stream falls back the same way before its first byte
    chunks = list(
        client.chat.completions.create(model="limited", messages=MSG, max_tokens=3, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "w0 w1 w2 "


def test_no_reservation_leaks_after_upstream_failures(proxy):
    url, db_url, _ = proxy
    key = _key(url, budget=0.2)
    client = _client(url, key)
    for model in ("limited_only", "array_only") * 3:  # failures release their reservation
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model=model, messages=MSG, max_tokens=200)
    # a request reserving the whole budget (200 tokens = $0.2) still fits
    client.chat.completions.create(model="honest", messages=MSG, max_tokens=200)
    time.sleep(0.2)  # settled just after the answer is sent
    assert _spent(db_url)["ledger"] == pytest.approx(0.2)


@pytest.mark.parametrize("proxy", ["sqlite"] + (["postgres"] if PG_URL else []), indirect=True)
def test_client_hangup_cancels_upstream_and_bills_what_was_delivered(proxy, hostile):
    url, db_url, _ = proxy
    _, upstream_app = hostile
    key = _key(url, budget=1.0)
    before = len(upstream_app.state.cancelled)
    body = {"model": "slow", "messages": MSG, "max_tokens": 900, "stream": True}
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as r:
        received = 0
        for line in r.iter_lines():
            received += line.startswith("data:")
            if received >= 5:
                break  # hang up mid-stream
    hung_up = time.monotonic()
    deadline = hung_up + 5
    while len(upstream_app.state.cancelled) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(upstream_app.state.cancelled) > before, "the upstream kept generating"
    assert upstream_app.state.cancelled[-1][1] - hung_up < 2
    # the reservation (900 tokens) is settled: a request for the rest of the budget fits
    time.sleep(0.2)
    (row,) = _rows(db_url, "status = 499")
    assert row[4] == "proxy-count" and row[2] >= 5 and row[3] > 0
    rest = int((1.0 - row[3]) / PER_TOKEN) - 1
    _client(url, key).chat.completions.create(model="honest", messages=MSG, max_tokens=rest)


def test_stream_cut_by_the_timeout_ends_with_an_error_event_and_is_billed(proxy):
    url, db_url, _ = proxy
    key = _key(url, budget=1.0)
    body = {"model": "slow", "messages": MSG, "max_tokens": 900, "stream": True}
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    events = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
    assert r.status_code == 200 and "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["code"] == "stream_cut" and "timed out" in last["error"]["message"]
    with pytest.raises(openai.APIError):  # the official client sees the error, not an end
        for _ in _client(url, key).chat.completions.create(
            stream=True, **{k: v for k, v in body.items() if k != "stream"}
        ):
            pass
    time.sleep(0.2)
    rows = _rows(db_url, "upstream = 'slow'")
    assert len(rows) == 2 and all(r[2] >= 10 and r[3] > 0 and r[1] == 504 for r in rows), rows


def test_keyless_requests_are_refused_once_keys_exist(hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_EFF_MONEY_ADMIN", ADMIN)
    url, _ = hostile
    for allow in (False, True):
        db_url = f"sqlite:///{tmp_path / f'keys-{allow}.db'}"
        config = parse_config(
            _config(
                url, db_url, auth={"admin_key_env": "LLM_EFF_MONEY_ADMIN", "allow_anonymous": allow}
            )
        )
        with serve_in_thread(create_app(config)) as proxy_url:
            chat = {"model": "honest", "messages": MSG, "max_tokens": 1}
            assert httpx.post(f"{proxy_url}/v1/chat/completions", json=chat).status_code == 200
            _key(proxy_url, budget=0.001)
            r = httpx.post(f"{proxy_url}/v1/chat/completions", json=chat)
            assert r.status_code == (200 if allow else 401), r.text
            if not allow:
                assert r.json()["error"]["code"] == "invalid_api_key"


def test_bad_admin_and_request_bodies_get_json_4xx(proxy):
    url, _, _ = proxy
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for spec in (
        {"name": "x", "budget_usd": "10"},
        {"name": "x", "budget_usd": -1},
        {"name": "x", "rpm": 1.5},
        {"name": "x", "surprise": 1},
        {"name": 5},
        [1, 2],
    ):
        r = httpx.post(f"{url}/admin/keys", json=spec, headers=admin)
        assert r.status_code == 400 and "error" in r.json(), (spec, r.text)
    key = _key(url, budget=1.0)
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"model": "honest", "messages": [], "n": ' + b"9" * 5000 + b"}",
        b'{"model": "honest", "messages": [{"role": "user", "content": "hi"}], '
        b'"max_tokens": 1e400}',
        json.dumps(
            {
                "model": "honest",
                "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
            }
        ).encode(),
        json.dumps(
            {
                "model": "honest",
                "messages": [{"role": "user", "content": [{"type": "text", "text": ["a"]}]}],
            }
        ).encode(),
        json.dumps({"model": "honest", "messages": MSG, "n": 100_000}).encode(),
        b"\xff\xfe not utf-8",
    ]
    for raw in bodies:
        r = httpx.post(f"{url}/v1/chat/completions", content=raw, headers=auth)
        assert 400 <= r.status_code < 500, (raw[:60], r.status_code, r.text[:200])
        assert r.headers["content-type"] == "application/json" and "error" in r.json()
    r = httpx.get(f"{url}/nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("proxy", ["sqlite"] + (["postgres"] if PG_URL else []), indirect=True)
def test_concurrent_budgeted_requests_never_overspend(proxy):
    url, db_url, _ = proxy
    client = _client(url, _key(url, budget=1.0))

    def call(_: int) -> int:
        try:
            client.chat.completions.create(model="honest", messages=MSG, max_tokens=30)
            return 200
        except openai.RateLimitError:
            return 429

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(call, range(100)))
    served = statuses.count(200)
    assert served == 33 and _spent(db_url)["ledger"] <= 1.0 + 1e-9  # 33 x 30 tokens = $0.99


def _raw_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_half_sent_bodies_time_out(hostile, tmp_path, monkeypatch):
    url, _ = hostile
    config = parse_config(_config(url, f"sqlite:///{tmp_path / 's.db'}", body_timeout_s=1.0))
    with serve_in_thread(create_app(config)) as proxy_url:
        sock = _raw_socket(proxy_url)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b'\r\nContent-Length: 500\r\n\r\n{"model": '
        )
        started = time.monotonic()
        answer = sock.recv(4096)
        sock.close()
    assert time.monotonic() - started < 5 and b" 408 " in answer.split(b"\r\n")[0]
    assert b'"code": "timeout"' in answer or b'"code":"timeout"' in answer
