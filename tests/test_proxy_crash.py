"""Budgets across crashes and replicas: `llm-eff serve` as real processes on one database,
SIGKILL under load on a budgeted key, a restart, two replicas sharing PostgreSQL, and the
server's own defences (header deadline, connection limit) against raw sockets."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from .proxy_support import fresh_database, hostile_upstream, serve_in_thread, start_serve

PG_URL = os.environ.get("LLM_EFF_TEST_POSTGRES_URL")
CHAT = {"model": "honest", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
PRICE = 0.001  # one completion token at $1,000 / M: one request


def _write_config(path: Path, upstream: str, db_url: str, **extra) -> Path:
    config = {
        "upstreams": {
            "honest": {
                "kind": "openai",
                "base_url": f"{upstream}/honest/v1",
                "model": "m",
                "prompt_per_m": 0.0,
                "completion_per_m": 1000.0,
                "timeout_s": 5,
            }
        },
        "database_url": db_url,
        "log_level": "warning",
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _create_key(url: str, budget: float) -> str:
    from routers.proxy.store import Database, KeyStore

    db = Database(url)
    try:
        return KeyStore(db).create("crash", budget)[0]
    finally:
        db.close()


def _load(urls: list[str], key: str, stop: threading.Event, served: list, workers: int = 8):
    def worker(i: int) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(
                        f"{urls[i % len(urls)]}/v1/chat/completions",
                        json=CHAT,
                        headers={"Authorization": f"Bearer {key}"},
                    )
                except httpx.HTTPError:
                    return  # the proxy died
                if r.status_code == 200:
                    served.append(time.monotonic())
                elif r.status_code == 429:
                    return  # budget exhausted

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    return threads


def _ledger(db_url: str) -> tuple[float, float]:
    from routers.proxy.store import NANO, Database

    db = Database(db_url)
    try:
        ((spent, reserved),) = db.execute("SELECT spent, reserved FROM key_budgets")
        logged = db.execute("SELECT COALESCE(SUM(cost), 0) FROM spend_log")[0][0]
    finally:
        db.close()
    assert spent / NANO == pytest.approx(float(logged), abs=1e-9)  # rows and ledger agree
    return spent / NANO, reserved / NANO


@pytest.mark.parametrize("backend", ["sqlite"] + (["postgres"] if PG_URL else []))
def test_sigkill_under_load_then_restart_never_serves_past_the_budget(backend, tmp_path: Path):
    budget = 0.6  # 600 one-token requests
    db_url = f"sqlite:///{tmp_path / 'spend.db'}" if backend == "sqlite" else fresh_database(PG_URL)
    with serve_in_thread(hostile_upstream()) as upstream:
        config = _write_config(tmp_path / "proxy.yaml", upstream, db_url)
        key = _create_key(db_url, budget)
        proc, url = start_serve(config)
        served: list[float] = []
        stop = threading.Event()
        threads = _load([url], key, stop, served)
        deadline = time.monotonic() + 20
        while len(served) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
        before_crash = len(served)
        assert 150 <= before_crash < 600
        if backend == "sqlite":
            conn = sqlite3.connect(tmp_path / "spend.db")
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.close()
        spent, reserved = _ledger(db_url)
        # every request a client saw served is in the ledger, settled or (killed between
        # its answer and its settlement) still reserved: two per client at most (the next
        # request can be admitted while the last one settles)
        assert spent + reserved >= before_crash * PRICE - 1e-9 and reserved <= 16 * PRICE + 1e-9
        proc, url = start_serve(config)
        stop = threading.Event()
        for t in _load([url], key, stop, served):
            t.join(timeout=60)
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    total = len(served)
    spent, reserved = _ledger(db_url)
    assert total * PRICE <= budget + 1e-9  # bound: $0 over
    assert spent + reserved <= budget + 1e-9 and total >= 600 - 16 - 1, (total, spent, reserved)


@pytest.mark.skipif(not PG_URL, reason="needs LLM_EFF_TEST_POSTGRES_URL")
def test_two_replicas_on_one_postgres_enforce_one_budget(tmp_path: Path):
    db_url = fresh_database(PG_URL)
    with serve_in_thread(hostile_upstream()) as upstream:
        config = _write_config(tmp_path / "proxy.yaml", upstream, db_url)
        key = _create_key(db_url, 0.05)  # 50 one-token requests, 100 asked for
        replicas = [start_serve(config) for _ in range(2)]
        urls = [url for _, url in replicas]

        def call(i: int) -> int:
            r = httpx.post(
                f"{urls[i % 2]}/v1/chat/completions",
                json=CHAT,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            return r.status_code

        with ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(call, range(100)))
        for proc, _ in replicas:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    assert statuses.count(200) == 50 and statuses.count(429) == 50, statuses
    spent, reserved = _ledger(db_url)
    assert spent == pytest.approx(0.05) and reserved == 0


def test_half_sent_headers_are_cut_and_the_connection_limit_answers_json_503(tmp_path: Path):
    with serve_in_thread(hostile_upstream()) as upstream:
        config = _write_config(
            tmp_path / "proxy.yaml",
            upstream,
            f"sqlite:///{tmp_path / 's.db'}",
            header_timeout_s=1.0,
            max_connections=20,
        )
        proc, url = start_serve(config)
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        try:
            idle = [socket.create_connection((host, port)) for _ in range(25)]
            for sock in idle[:5]:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # never ends
            r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=5)
            assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
            time.sleep(1.5)  # past the header deadline the idle connections are closed
            for sock in idle:
                sock.settimeout(2)
                assert sock.recv(100) == b""  # closed by the proxy
                sock.close()
            assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=5).status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)


def test_idle_connections_past_the_default_open_file_limit_do_not_starve_requests(tmp_path):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"the open-file hard limit ({hard}) leaves no room above 1,024")
    if soft < 1300:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # this test's side
    with serve_in_thread(hostile_upstream()) as upstream:
        config = _write_config(tmp_path / "proxy.yaml", upstream, f"sqlite:///{tmp_path / 's.db'}")

        def low_limit() -> None:  # the proxy starts where many distributions start: 1,024
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

        proc, url = start_serve(config, preexec_fn=low_limit)
        port = int(url.rsplit(":", 1)[1])
        idle: list[socket.socket] = []
        try:
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1100)]
            time.sleep(0.5)
            statuses = [
                httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10).status_code
                for _ in range(5)
            ]
            assert statuses == [200] * 5
        finally:
            for sock in idle:
                sock.close()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        assert "open-file limit" in config.with_suffix(".log").read_text()


def test_hang_up_cancels_the_upstream_under_llm_eff_serve(tmp_path: Path):
    """`serve`'s protocol tells the handler of a disconnect itself (no watcher task)."""
    app = hostile_upstream()
    with serve_in_thread(app) as upstream:
        config = _write_config(tmp_path / "proxy.yaml", upstream, f"sqlite:///{tmp_path / 's.db'}")
        text = config.read_text().replace("/honest/v1", "/slow/v1")
        config.write_text(text)
        proc, url = start_serve(config)
        try:
            body = {**CHAT, "max_tokens": 900, "stream": True}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as r:
                received = 0
                for line in r.iter_lines():
                    received += line.startswith("data:")
                    if received >= 5:
                        break
            hung_up = time.monotonic()
            while not app.state.cancelled and time.monotonic() < hung_up + 5:
                time.sleep(0.05)
            assert app.state.cancelled and app.state.cancelled[-1][1] - hung_up < 2
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    rows = (
        sqlite3.connect(tmp_path / "s.db")
        .execute("SELECT status, completion_tokens, usage_source FROM spend_log")
        .fetchall()
    )
    assert rows == [(499, rows[0][1], "proxy-count")] and rows[0][1] >= 5
