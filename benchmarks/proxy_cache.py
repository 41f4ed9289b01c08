"""The proxy's response cache on a replayed workload: hit rate, wrong hits, $ saved, and what a
miss adds.

    .venv/bin/python benchmarks/proxy_cache.py [--mmlu ../shared/data/routellm/mmlu]
        [--requests 1000] [--thresholds 0.9 0.95 0.98]

Workload (seeded): RouteLLM's MMLU prompts (question and four options) replayed as a stream of
temperature-0 requests: a new question, an exact repeat of one already asked, a light rewrite
of one (same meaning: lower case, "Question:" prefix, spacing, "Answer:" dropped), or a near
miss (a different question that looks the same: two options swapped, so the right letter
changes, or a number in the question changed). The upstream (a real HTTP server in its own
process) answers every prompt with a text naming that prompt's hash and 200 completion tokens;
the benchmark knows which prompts mean the same, so a hit is *right* when its answer belongs
to a prompt of the same meaning and *wrong* otherwise (a near miss served a cached answer).
Dollars: the upstream priced at gpt-4o's list price ($2.50 / $10 per 1M tokens).

Each cache mode (off, exact, semantic at each threshold) runs the same workload against a
fresh `llm-eff serve` process and database. A miss's added time is the proxy's own time
(`x-llm-eff-overhead-ms`, upstream excluded; the lookup runs inside it), p50 over the misses;
next to it, the decision time of a MiniLM kNN router on the same prompts, measured in the same
run: the issue's target is <= 1 ms p50 for exact and <= the router's own latency for semantic.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from proxy_overhead import APP_HEAD, free_port, start, start_app, wait_up
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UPSTREAM_APP = (
    """
import hashlib, json
"""
    + APP_HEAD
    + """\
    request = json.loads(body)
    prompt = request["messages"][-1]["content"]
    digest = hashlib.sha1(prompt.encode()).hexdigest()
    usage = {"prompt_tokens": len(prompt) // 4 + 10, "completion_tokens": 200}
    usage["total_tokens"] = usage["prompt_tokens"] + 200
    answer = {"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "answer " + digest}}],
              "usage": usage}
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
"""
)
PRICE = (2.5, 10.0)  # gpt-4o list price, $ per 1M prompt / completion tokens


def rewrite(prompt: str, rng: random.Random) -> str:
    """The same question, lightly rewritten."""
    stem, _, rest = prompt.partition("\n")
    choices = [
        lambda: stem.lower() + "\n" + rest,
        lambda: "Question: " + prompt,
        lambda: prompt.replace("\n", "\n "),
        lambda: prompt.removesuffix("Answer:").rstrip(),
    ]
    return rng.choice(choices)()


def near_miss(prompt: str, rng: random.Random) -> str | None:
    """A different question that reads almost the same (None if none can be made)."""
    options = re.findall(r"^([A-D])\. (.*)$", prompt, flags=re.M)
    number = re.search(r"\d+", prompt.split("\nA.")[0])
    if number and rng.random() < 0.5:
        start, end = number.span()
        return prompt[:start] + str(int(number.group()) + 1) + prompt[end:]
    if len(options) >= 2 and options[0][1] != options[1][1]:
        a, b = options[0][1], options[1][1]
        return (
            prompt.replace(f"A. {a}\n", "A. \0\n", 1)
            .replace(f"B. {b}\n", f"B. {a}\n", 1)
            .replace("A. \0\n", f"A. {b}\n", 1)
        )
    return None


def workload(prompts: list[str], n: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, prompt, meaning id) per request: new 40%, repeat 30%, rewrite 20%, near miss
    10%."""
    rng = random.Random(seed)
    pool = list(prompts)
    rng.shuffle(pool)
    seen: list[tuple[str, str]] = []
    out = []
    for _ in range(n):
        roll = rng.random()
        if not seen or roll < 0.4:
            prompt = pool.pop()
            meaning = hashlib.sha1(prompt.encode()).hexdigest()
            seen.append((prompt, meaning))
            out.append(("new", prompt, meaning))
            continue
        prompt, meaning = rng.choice(seen)
        if roll < 0.7:
            out.append(("repeat", prompt, meaning))
        elif roll < 0.9:
            out.append(("rewrite", rewrite(prompt, rng), meaning))
        else:
            other = near_miss(prompt, rng)
            if other is None or other == prompt:
                out.append(("repeat", prompt, meaning))
            else:
                out.append(("near miss", other, hashlib.sha1(other.encode()).hexdigest()))
    return out


def run_mode(
    mode: str, threshold: float, requests: list[tuple[str, str, str]], up: str, tmp: Path
) -> dict:
    """Replay the workload against a fresh proxy with this cache mode; the mode's numbers."""
    name = f"{mode}-{threshold:g}"
    cfg = tmp / f"{name}.yaml"
    cache = f"{{mode: {mode}, semantic_threshold: {threshold}}}"
    cfg.write_text(
        f"upstreams:\n  gpt4o: {{kind: openai, base_url: '{up}', model: m, "
        f"prompt_per_m: {PRICE[0]}, completion_per_m: {PRICE[1]}}}\n"
        f"database_url: 'sqlite:///{tmp / (name + '.db')}'\n"
        f"cache: {cache}\nlog_level: warning\n"
    )
    port = free_port()
    exe = str(Path(sys.executable).with_name("llm-eff"))
    proc = start([exe, "serve", "--config", str(cfg), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    meaning_of = {hashlib.sha1(p.encode()).hexdigest(): m for _, p, m in requests}
    stats = {"exact": 0, "semantic": 0, "wrong": 0, "saved": 0.0, "spent": 0.0}
    miss_overhead, hit_latency, by_kind = [], [], {}
    try:
        wait_up(f"{url}/health", proc, 120)
        with httpx.Client(base_url=url, timeout=60) as client:
            for kind, prompt, meaning in requests:
                body = {
                    "model": "gpt4o",
                    "temperature": 0,
                    "messages": [{"role": "user", "content": prompt}],
                }
                began = time.perf_counter()
                reply = client.post("/v1/chat/completions", json=body)
                elapsed = (time.perf_counter() - began) * 1000
                reply.raise_for_status()
                state = reply.headers.get("x-llm-eff-cache", "off")
                data = reply.json()
                answer_of = meaning_of.get(data["choices"][0]["message"]["content"][7:])
                usage = data["usage"]
                dollars = (usage["prompt_tokens"] * PRICE[0] + 200 * PRICE[1]) / 1e6
                counts = by_kind.setdefault(kind, [0, 0])
                counts[1] += 1
                if state.startswith("hit"):
                    stats[state[4:]] += 1
                    stats["wrong"] += answer_of != meaning
                    stats["saved"] += dollars
                    hit_latency.append(elapsed)
                    counts[0] += 1
                else:
                    stats["spent"] += dollars
                    miss_overhead.append(float(reply.headers["x-llm-eff-overhead-ms"]))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    stats.update(
        miss_overhead_p50=statistics.median(miss_overhead),
        hit_p50=statistics.median(hit_latency) if hit_latency else float("nan"),
        by_kind=by_kind,
    )
    return stats


def router_latency_ms(train: list[str], asked: list[str]) -> float:
    """p50 decision time of a MiniLM kNN router (the proxy's embedding routers' cost) on the
    workload's own prompts."""
    import numpy as np

    from routers.knn import KNNRouter

    rng = np.random.default_rng(0)
    router = KNNRouter(k=20).fit(train, rng.random(len(train)).astype(np.float32))
    router.score(asked[0])
    times = []
    for prompt in asked:
        began = time.perf_counter()
        router.score(prompt)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    """Replay the workload per cache mode and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mmlu", type=Path, default=ROOT.parent / "shared/data/routellm/mmlu")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.95, 0.98])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.mmlu.exists():
        args.mmlu = ROOT / "tests/data/routellm/mmlu"  # the vendored slice
    from routers.outcomes import load_outcomes

    prompts = sorted(set(load_outcomes(args.mmlu).prompts))
    requests = workload(prompts, args.requests, args.seed)
    console = Console(width=200)
    kinds = {k: sum(r[0] == k for r in requests) for k in ("new", "repeat", "rewrite", "near miss")}
    console.print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {len(requests)} requests from {len(prompts)} MMLU prompts "
        f"({', '.join(f'{v} {k}' for k, v in kinds.items())}); upstream priced ${PRICE[0]} / "
        f"${PRICE[1]} per 1M tokens; one client, requests in sequence"
    )
    tmp = Path(tempfile.mkdtemp(prefix="llm-eff-cache-bench-"))
    upstream, up_port = start_app(UPSTREAM_APP, tmp)
    try:
        wait_up(f"http://127.0.0.1:{up_port}/", upstream)
        up = f"http://127.0.0.1:{up_port}/v1"
        modes = [("off", 0.95), ("exact", 0.95)] + [("semantic", t) for t in args.thresholds]
        results = [(m, t, run_mode(m, t, requests, up, tmp)) for m, t in modes]
    finally:
        upstream.terminate()
    asked = [p for _, p, _ in requests]
    router_ms = router_latency_ms(prompts[-300:], asked[:300])
    table = Table(
        "cache",
        "hits exact",
        "hits semantic",
        "wrong hits",
        "hit rate",
        "repeats hit",
        "rewrites hit",
        "near misses hit",
        "$ spent",
        "$ saved",
        "miss: proxy own ms p50",
        "hit: latency ms p50",
    )
    for mode, threshold, s in results:
        hits = s["exact"] + s["semantic"]

        def share(kind: str, s: dict = s) -> str:
            got, total = s["by_kind"].get(kind, [0, 0])
            return f"{got}/{total}"

        table.add_row(
            mode if mode != "semantic" else f"semantic >= {threshold:g}",
            str(s["exact"]),
            str(s["semantic"]),
            str(s["wrong"]),
            f"{hits / len(requests):.1%}",
            share("repeat"),
            share("rewrite"),
            share("near miss"),
            f"{s['spent']:.4f}",
            f"{s['saved']:.4f}",
            f"{s['miss_overhead_p50']:.3f}",
            f"{s['hit_p50']:.2f}",
        )
    console.print(table)
    console.print(
        f"MiniLM kNN router decision on the workload's prompts, in-process, this run: "
        f"p50 {router_ms:.2f} ms"
    )


if __name__ == "__main__":
    main()
