"""Engine speed: prefill and decode tokens/s and peak memory of each local GGUF model on
transformers (fp32 and bf16) and llama.cpp, at batch 1 and batch 8, side by side in one run.

    .venv/bin/python benchmarks/engine_speed.py [--models smollm2-135m,qwen2.5-coder-0.5b,...]
        [--prompt-tokens 256] [--new-tokens 64] [--batches 1,8]

Each (model, engine) runs in its own subprocess, so its peak resident memory is its own. A
batch is B distinct prompts of about `--prompt-tokens` tokens (distinct, and llama.cpp's
prompt cache is off, so no engine reuses a cached prefix); an untimed warm-up generation runs
first. Prefill tokens/s = B x prompt tokens / time to the first new token (a 1-token
generation); decode tokens/s = B x (new tokens - 1) / the rest of a generation forced to
`--new-tokens` tokens (EOS ignored), summed over the batch. transformers dequantizes a GGUF to
dense weights when it loads it (load time reported). Models that are not installed are
skipped with the line that installs them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENGINES = ("transformers-fp32", "transformers-bf16", "llamacpp")
TEXT = (
    "def merge_intervals(intervals):\n    # sort by start, then merge overlapping ranges\n"
    "    result = []\n    for start, end in sorted(intervals):\n"
    "        if result and start <= result[-1][1]:\n"
    "            result[-1][1] = max(result[-1][1], end)\n"
    "        else:\n            result.append([start, end])\n    return result\n\n"
)


def _rounds(n: int) -> tuple[tuple[int, str], ...]:
    """(new tokens, label) of each timed generation: a warm-up (not counted), 1 token, n."""
    return ((4, "warm-up"), (1, "first"), (n, "whole"))


def _prompts(batch: int, tokens: int, round_: str) -> list[str]:
    """`batch` distinct prompts of about `tokens` tokens (about 4 characters a token)."""
    body = (TEXT * (tokens * 4 // len(TEXT) + 1))[: tokens * 4]
    return [f"# case {round_}-{i}\n{body}\nExplain this code." for i in range(batch)]


def _transformers(model: str, dtype: str, batches: list[int], p: int, n: int) -> dict:
    import torch

    from llm_eff.backends.base import user_chat
    from llm_eff.backends.transformers_backend import encode_chats, load_local
    from llm_eff.models import parse_model

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    start = time.perf_counter()
    lm, tok = load_local(parse_model(model))
    if dtype == "bf16":
        lm = lm.to(torch.bfloat16)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    load_s = time.perf_counter() - start
    out = {"load_s": load_s}
    for b in batches:
        timings = []
        for new, round_ in _rounds(n):
            enc = encode_chats(tok, [user_chat(x) for x in _prompts(b, p, f"{b}-{round_}")])
            kwargs = {"max_new_tokens": new, "min_new_tokens": new, "do_sample": False}
            kwargs.update(pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
            t = time.perf_counter()
            with torch.inference_mode():
                lm.generate(**enc, **kwargs)
            timings.append((time.perf_counter() - t, int(enc["attention_mask"].sum())))
        _, (first, prompt_tokens), (whole, _) = timings
        out[b] = {
            "prefill": prompt_tokens / first,
            "decode": b * (n - 1) / max(whole - first, 1e-9),
        }
    return out


def _llamacpp_batch(model: str, b: int, p: int, n: int) -> tuple[float, dict, float]:
    """(load seconds, {prefill, decode}, peak GB) of one llama.cpp server with `b` parallel
    slots (a child process: its peak memory is read before it stops)."""
    from concurrent.futures import ThreadPoolExecutor

    from llm_eff.backends import gguf_file
    from llm_eff.backends.base import user_chat
    from llm_eff.backends.llamacpp_backend import LlamaCppBackend
    from llm_eff.models import parse_model

    start = time.perf_counter()
    server = LlamaCppBackend(gguf_file(parse_model(model)), model, batch_size=b).server
    load_s = time.perf_counter() - start
    timings = []
    for new, round_ in _rounds(n):
        chats = [user_chat(x) for x in _prompts(b, p, f"{b}-{round_}")]
        base = {"max_tokens": new, "temperature": 0, "ignore_eos": True, "cache_prompt": False}
        bodies = [{**base, "messages": c} for c in chats]
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=b) as pool:
            replies = list(pool.map(server.chat, bodies))
        prompt_tokens = sum(r["usage"]["prompt_tokens"] for r in replies)
        timings.append((time.perf_counter() - t, prompt_tokens))
    _, (first, prompt_tokens), (whole, _) = timings
    server_rss_gb = server.peak_rss_bytes() / 1024**3
    server.close()
    rates = {"prefill": prompt_tokens / first, "decode": b * (n - 1) / (whole - first)}
    return load_s, rates, server_rss_gb


def _llamacpp(model: str, batches: list[int], p: int, n: int) -> dict:
    out: dict = {}
    for b in batches:  # one server at a time: its slots' KV cache is sized for the batch
        load_s, out[b], server_rss_gb = _llamacpp_batch(model, b, p, n)
        out.setdefault("load_s", load_s)
        out["server_rss_gb"] = max(out.get("server_rss_gb", 0.0), server_rss_gb)
    return out


def _child(args: argparse.Namespace) -> None:
    batches = [int(x) for x in args.batches.split(",")]
    if args.one_engine == "llamacpp":
        result = _llamacpp(args.one_model, batches, args.prompt_tokens, args.new_tokens)
    else:
        dtype = args.one_engine.split("-")[1]
        result = _transformers(args.one_model, dtype, batches, args.prompt_tokens, args.new_tokens)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    result["peak_rss_gb"] = own + result.pop("server_rss_gb", 0.0)  # llama.cpp: in a child
    print("RESULT " + json.dumps(result))


def main() -> None:
    """Run every (model, engine) in a subprocess and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--one-model", help=argparse.SUPPRESS)
    parser.add_argument("--one-engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_model:
        return _child(args)
    from llm_eff.core.errors import UserError
    from llm_eff.models import parse_model

    batches = [int(x) for x in args.batches.split(",")]
    rows = []
    for model in args.models.split(","):
        try:
            parse_model(model)
        except UserError as exc:
            print(f"skipped {model}: {exc}")
            continue
        for engine in args.engines.split(","):
            print(f"[engine_speed] {model} on {engine} ...", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--one-model", model, "--one-engine", engine]
            command += ["--prompt-tokens", str(args.prompt_tokens)]
            command += ["--new-tokens", str(args.new_tokens), "--batches", args.batches]
            done = subprocess.run(command, capture_output=True, text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(f"{model} {engine} failed:\n{done.stderr[-1500:]}")
                continue
            rows.append((model, engine, json.loads(line.removeprefix("RESULT "))))
    print(
        f"\nmachine: {platform.node()}, {len(os.sched_getaffinity(0))} cores, "
        f"{platform.processor() or platform.machine()}; prompts of ~{args.prompt_tokens} "
        f"tokens, {args.new_tokens} new tokens, greedy\n"
    )
    head = "| model | engine | load s | peak RSS GB |"
    head += "".join(f" prefill tok/s b{b} | decode tok/s b{b} |" for b in batches)
    print(head)
    print("|" + "---|" * (4 + 2 * len(batches)))
    for model, engine, r in rows:
        cells = [model, engine, f"{r['load_s']:.1f}", f"{r['peak_rss_gb']:.2f}"]
        for b in batches:
            cells += [f"{r[str(b)]['prefill']:.0f}", f"{r[str(b)]['decode']:.1f}"]
        print("| " + " | ".join(cells) + " |")
    for model in dict.fromkeys(m for m, _, _ in rows):
        by = {e: r for m, e, r in rows if m == model}
        if "llamacpp" not in by or "transformers-fp32" not in by:
            continue
        fast, fp32 = by["llamacpp"], by["transformers-fp32"]
        parts = []
        for b in batches:
            best = max(r[str(b)]["decode"] for e, r in by.items() if e != "llamacpp")
            parts.append(
                f"b{b} decode x{fast[str(b)]['decode'] / fp32[str(b)]['decode']:.2f} of fp32, "
                f"x{fast[str(b)]['decode'] / best:.2f} of the best transformers setting"
            )
        memory = fast["peak_rss_gb"] / fp32["peak_rss_gb"]
        print(f"{model}, llama.cpp: {'; '.join(parts)}; memory x{memory:.2f} of fp32")


if __name__ == "__main__":
    main()
