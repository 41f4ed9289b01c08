"""Are local dollars stable under machine load? Wall-time prices against calibrated ones.

    .venv/bin/python benchmarks/stable_pricing.py [--model smollm2-135m] [--bench efficiency]
        [--limit 6] [--engine auto] [--hogs N]

Runs `llm-eff eval` on the same tasks four times, side by side in one run: priced from each
batch's wall time (no calibration) and from a calibration made at the start on the quiet
machine (`llm-eff calibrate`), each once on the idle machine and once while `--hogs` busy-loop
processes (default: one per core) compete for the CPU. Greedy decoding, so the four runs
generate the same tokens (or nearly: see the README on llama.cpp's parallel slots). The issue's
target: calibrated dollars on the loaded machine within 10% of the idle ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("llm-eff"))


def _eval(args: argparse.Namespace, cache: Path, run: Path) -> tuple[float, int, float]:
    """($ per task, tokens, seconds) of one eval run into a fresh run log."""
    command = [EXE, "eval", "--bench", args.bench, "--limit", str(args.limit)]
    command += ["--system", args.model, "--engine", args.engine, "--run", str(run)]
    env = {**os.environ, "LLM_EFF_CACHE": str(cache)}
    began = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    attempts = [json.loads(line) for line in run.read_text().splitlines() if line.strip()]
    dollars = sum(a["cost"]["dollars"] for a in attempts) / len(attempts)
    tokens = sum(a["usage"]["prompt_tokens"] + a["usage"]["completion_tokens"] for a in attempts)
    return dollars, tokens, seconds


def main() -> None:
    """Calibrate, run the four evals and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--bench", default="efficiency")
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--hogs", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llm-eff-pricing-"))
    wall_cache, calibrated_cache = tmp / "wall-cache", tmp / "calibrated-cache"
    embedded = Path(os.environ.get("LLM_EFF_CACHE") or Path.home() / ".cache/llm-eff") / "models"
    for cache in (wall_cache, calibrated_cache):
        cache.mkdir()
        if embedded.is_dir():  # the dequantized embedded model, for the transformers engine
            (cache / "models").symlink_to(embedded)
    print(f"[stable_pricing] calibrating {args.model} on the idle machine ...", file=sys.stderr)
    subprocess.run(
        [EXE, "calibrate", args.model, "--engine", args.engine, "--rounds", "3"],
        check=True,
        env={**os.environ, "LLM_EFF_CACHE": str(calibrated_cache)},
        stdout=sys.stderr,
    )
    results = {}
    hogs: list[subprocess.Popen] = []
    try:
        for load in ("idle", "loaded"):
            if load == "loaded":
                hogs = [
                    subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    for _ in range(args.hogs)
                ]
            for pricing, cache in (("wall time", wall_cache), ("calibrated", calibrated_cache)):
                print(f"[stable_pricing] {pricing}, {load} ...", file=sys.stderr, flush=True)
                run = tmp / f"{pricing.replace(' ', '-')}-{load}.jsonl"
                results[(pricing, load)] = _eval(args, cache, run)
    finally:
        for hog in hogs:
            hog.kill()
    print(
        f"\nmachine: {platform.node()}, {len(os.sched_getaffinity(0))} cores; {args.model} "
        f"({args.engine} engine), {args.bench} first {args.limit} tasks, greedy; loaded = "
        f"{args.hogs} busy-loop processes beside the eval\n"
    )
    print(
        "| pricing | idle $ / task | loaded $ / task | loaded / idle | tokens idle / loaded "
        "| eval s idle / loaded |"
    )
    print("|---|---|---|---|---|---|")
    for pricing in ("wall time", "calibrated"):
        (d0, t0, s0), (d1, t1, s1) = results[(pricing, "idle")], results[(pricing, "loaded")]
        print(
            f"| {pricing} | {d0:.7f} | {d1:.7f} | {d1 / d0:.2f}x | {t0:,} / {t1:,} | "
            f"{s0:.0f} / {s1:.0f} |"
        )
    calibrated = results[("calibrated", "loaded")][0] / results[("calibrated", "idle")][0]
    verdict = "meets" if abs(calibrated - 1) <= 0.10 else "does not meet"
    print(f"\ncalibrated dollars loaded / idle = {calibrated:.3f}: {verdict} the 10% target")


if __name__ == "__main__":
    main()
