"""Operating the proxy: `llm-eff serve` as a real process, a local model upstream, SIGKILL under
load, and the `keys` / `spend` commands on the same database."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

from .conftest import cli
from .proxy_support import fake_upstream, serve_in_thread, start_serve

FLUSH_S = 0.2


def test_sigkill_under_load_keeps_spend_log_whole(tmp_path: Path):
    db_path = tmp_path / "spend.db"
    with serve_in_thread(fake_upstream(delay_s=0.005)) as upstream:
        cfg = tmp_path / "proxy.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "upstreams": {
                        "cheap": {
                            "kind": "openai",
                            "base_url": f"{upstream}/ok/v1",
                            "model": "m",
                            "prompt_per_m": 1.0,
                            "completion_per_m": 2.0,
                        }
                    },
                    "database_url": f"sqlite:///{db_path}",
                    "flush_interval_s": FLUSH_S,
                }
            )
        )
        proc, url = start_serve(cfg)
        done: list[float] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=5) as client:
                while not stop.is_set():
                    try:
                        r = client.post(
                            f"{url}/v1/chat/completions",
                            json={
                                "model": "cheap",
                                "messages": [{"role": "user", "content": "hi"}],
                            },
                        )
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        done.append(time.monotonic())

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
    before_window = sum(1 for t in done if t < killed_at - FLUSH_S - 0.1)
    assert before_window > 50
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute(
        "SELECT ts, upstream, prompt_tokens, completion_tokens, cost, status FROM spend_log"
    ).fetchall()
    conn.close()
    assert all(None not in row for row in rows)  # no partial rows
    # a row can be written for an answer that the kill stopped on its way to the client: at
    # most one per client thread (each has one request in flight)
    assert before_window <= sum(1 for r in rows if r[5] == 200) <= len(done) + len(threads)

    # the same database through the operator's commands
    created = cli("keys", "create", "team-b", "--config", str(cfg), "--budget", "2.5")
    assert created.returncode == 0 and "sk-llmeff-" in created.stdout
    key_id = created.stdout.split()[1]
    listed = cli("keys", "list", "--config", str(cfg))
    assert "team-b" in listed.stdout and "active" in listed.stdout
    assert cli("keys", "revoke", key_id, "--config", str(cfg)).returncode == 0
    assert "revoked" in cli("keys", "list", "--config", str(cfg)).stdout
    again = cli("keys", "revoke", key_id, "--config", str(cfg))
    assert again.returncode == 2 and "no active key" in again.stderr
    spend = cli("spend", "--config", str(cfg))
    assert spend.returncode == 0 and "cheap" in spend.stdout
    report = cli("report", str(db_path), "--out", str(tmp_path / "proxy-report"))
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "proxy-report" / "report.md").read_text()
    assert "## proxy" in md and "| cheap |" in md and "proxy-spend-log" in md


def test_serve_says_where_it_listens_logs_each_request_and_its_shutdown(tmp_path: Path):
    with serve_in_thread(fake_upstream()) as upstream:
        cfg = tmp_path / "proxy.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "upstreams": {
                        "cheap": {
                            "kind": "openai",
                            "base_url": f"{upstream}/ok/v1",
                            "model": "m",
                            "prompt_per_m": 1.0,
                            "completion_per_m": 2.0,
                        }
                    },
                    "database_url": f"sqlite:///{tmp_path / 'spend.db'}",
                }
            )
        )
        proc, url = start_serve(cfg)
        body = {"model": "cheap", "messages": [{"role": "user", "content": "secret prompt"}]}
        ok = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
        refused = httpx.post(f"{url}/v1/chat/completions", json={**body, "model": "x"})
        router = httpx.post(
            f"{url}/v1/chat/completions", json={**body, "model": "router-rules-0.4"}
        )
        assert router.status_code == 404
        assert "routers need a config naming a weak and a strong upstream" in router.text
        assert "its models: cheap" in router.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises it, once done
    log = cfg.with_suffix(".log").read_text()
    port = url.rsplit(":", 1)[1]
    assert f"llm-eff proxy listening on http://127.0.0.1:{port} (upstreams: cheap" in log
    request_id = ok.headers["x-request-id"]
    (line,) = [line for line in log.splitlines() if request_id in line]
    assert " 200 upstream=cheap route=- tokens=" in line and "$0.0000" in line
    assert f"{refused.headers['x-request-id']} 404 refused: model_not_found" in log
    assert "shutting down: flushing the spend log" in log and "stopped: spend log flushed" in log
    assert "secret prompt" not in log  # prompts are never logged
    assert "Traceback" not in log


def test_example_config_is_valid():
    from routers.proxy import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "examples" / "proxy.yaml")
    assert set(config.upstreams) == {"gpt-4o-mini", "smollm2", "my-vllm"}
    assert config.routers["rules"].strong == "gpt-4o-mini" and config.require_keys


def test_readme_config_reference_names_every_field():
    from routers.proxy.config import (
        AuthConfig,
        CacheConfig,
        ProxyConfig,
        RouterConfig,
        UpstreamConfig,
    )

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("Config fields (unknown") : readme.index("- Endpoints:")]
    prefixes = {
        UpstreamConfig: "upstreams.NAME.",
        RouterConfig: "routers.NAME.",
        AuthConfig: "auth.",
        CacheConfig: "cache.",
        ProxyConfig: "",
    }
    for model, prefix in prefixes.items():
        for field in model.model_fields:
            if field == "name" or (
                model is ProxyConfig and field in ("upstreams", "routers", "auth", "cache")
            ):
                continue
            named = f"`{prefix}{field}`" in table or (prefix and f"`{field}`" in table)
            assert named, f"{prefix}{field} is missing from the README's config table"


def test_serve_config_errors_are_one_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("upstreams:\n  a: {kind: nope, model: m}\n")
    out = cli("serve", "--config", str(bad))
    assert out.returncode == 2 and "upstreams.a.kind" in out.stderr and "'openai'" in out.stderr
    assert "Traceback" not in out.stderr
    missing = cli("serve", "--config", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_litellm_warm_import_is_frozen_with_the_servers_start_up_objects():
    """The token counter's import (LiteLLM: a quarter of a million objects) runs after `serve`
    froze its start-up objects; it is frozen too, else every collection walks it. A process
    that froze nothing is left as it was."""
    probe = (
        "import gc, sys\n"
        "from routers.proxy.billing import warm_counter\n"
        "frozen = sys.argv[1] == 'frozen'\n"
        "if frozen:\n"
        "    gc.freeze()\n"
        "before = gc.get_freeze_count()\n"
        "warm_counter()\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    counts = {}
    for mode in ("frozen", "plain"):
        out = subprocess.run(
            [sys.executable, "-c", probe, mode],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert out.returncode == 0, out.stderr
        counts[mode] = [int(n) for n in out.stdout.split()]
    before, after, young = counts["frozen"]
    assert after - before > 50_000 and young < 50_000
    assert counts["plain"][:2] == [0, 0] and counts["plain"][2] > 50_000
