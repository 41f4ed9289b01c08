"""EfficientLLM's axes for weight precision: fp32 / bf16 / int8 / int4 / nf4 side by side.

    .venv/bin/python benchmarks/efficientllm.py [--models smollm2-135m ...]
        [--schemes fp32 bf16 int8 int4 nf4] [--ladder-schemes fp32 bf16 int8 int4 nf4] [--limit 24]
        [--max-tokens 192] [--batch-size 8]

Each (model, scheme) runs in its own subprocess, one after the other (so peak memory is that
scheme's alone), through `MODEL:quant=SCHEME` on the transformers engine: the efficiency
benchmark's first `--limit` tasks greedily (accuracy, cost-of-pass, TTFT, TPOT, batch
throughput, compute and memory utilization, energy), and the perplexity of every task's reference
solution given its prompt (held out: weight-only quantization sees no data). Weight memory is
counted as stored: the whole model, and the decoder layers alone (where the quantized linear
layers are; embeddings and the output head stay in float). The ladder's Qwen2.5-Coder-0.5B is
added when it is installed (`llm-eff models install qwen2.5-coder-0.5b`). Dollars are
wall-time priced unless `llm-eff calibrate` ran for the model. The claim tested (EfficientLLM):
int4 cuts weight memory >= 3x at <= 5 points of accuracy or <= 10% perplexity lost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LADDER = "qwen2.5-coder-0.5b"


def _perplexity(backend, tasks) -> float:  # noqa: ANN001 - a TransformersBackend, Tasks
    """exp(mean loss) of each task's reference given its prompt, in the model's chat format."""
    import torch

    from llm_eff.backends.base import user_chat
    from llm_eff.models.quant import grad_free

    tok, model = backend.tokenizer, backend.model
    total, count = 0.0, 0
    for task in tasks:
        prompt = tok.apply_chat_template(
            user_chat(task.prompt), tokenize=False, add_generation_prompt=True
        )
        answer = f"```python\n{task.reference.strip()}\n```"
        head = tok(prompt, add_special_tokens=False)["input_ids"]
        tail = tok(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([head + tail], device=backend.device)
        labels = ids.clone()
        labels[0, : len(head)] = -100  # score the reference only
        with grad_free(backend.quant):
            loss = model(input_ids=ids, labels=labels).loss
        total += float(loss) * len(tail)
        count += len(tail)
    return math.exp(total / count)


def worker(model: str, scheme: str, limit: int, max_tokens: int, batch_size: int) -> dict:
    """One (model, scheme): its row of the table, measured in this process."""
    from evals.benchmarks.efficiency import load_efficiency
    from evals.metrics.summary import summarize_system
    from evals.runner import RunOptions, run_system
    from evals.systems import parse_system
    from llm_eff.backends import make_backend
    from llm_eff.backends.base import peak_rss_bytes
    from llm_eff.core import RunLog
    from llm_eff.models import parse_model
    from llm_eff.models.quant import weight_bytes

    spec = f"{model}:quant={scheme}"
    began = time.perf_counter()
    backend = make_backend(parse_model(spec), batch_size=batch_size, engine="transformers")
    load_s = time.perf_counter() - began
    bench = load_efficiency()
    perplexity = _perplexity(backend, bench.tasks)
    system = parse_system(f"{spec},max_tokens={max_tokens}")
    with tempfile.TemporaryDirectory() as tmp:
        log = RunLog(Path(tmp) / "run.jsonl")
        run_system(
            bench,
            system,
            log,
            RunOptions(limit=limit, batch_size=batch_size),
            backends={(system.model, None): backend},
        )
        summary = summarize_system(list(log.read()))
    layers = backend.model.get_submodule("model.layers")
    return {
        "model": model,
        "scheme": scheme,
        "device": backend.device,
        "load_s": load_s,
        "weights_bytes": weight_bytes(backend.model),
        "layer_bytes": weight_bytes(layers),
        "perplexity": perplexity,
        "peak_rss": peak_rss_bytes(),  # includes the float weights quantization starts from
        "resident": int(Path("/proc/self/statm").read_text().split()[1])
        * os.sysconf("SC_PAGESIZE"),
        **{
            k: getattr(summary, k)
            for k in (
                "tasks",
                "accuracy",
                "cost_of_pass",
                "dollars_per_attempt",
                "ttft_p50_s",
                "tpot_p50_s",
                "throughput_tokens_per_s",
                "peak_memory_bytes",
                "memory_utilization",
                "compute_utilization",
                "energy_j_per_attempt",
                "compression_rate",
                "quant",
                "price_sources",
            )
        },
    }


def _fmt(value: float | None, spec: str, scale: float = 1.0, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:{spec}}{unit}"


def main() -> None:
    """Run every (model, scheme) in its own subprocess and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None)
    every = ["fp32", "bf16", "int8", "int4", "nf4"]
    parser.add_argument("--schemes", nargs="+", default=every)
    parser.add_argument("--ladder-schemes", nargs="+", default=every)
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SCHEME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        row = worker(*args.worker, args.limit, args.max_tokens, args.batch_size)
        print("ROW " + json.dumps(row))
        return
    models = args.models
    if models is None:
        from llm_eff.core.errors import UserError
        from llm_eff.models.ladder import installed_gguf

        models = ["smollm2-135m"]
        try:
            installed_gguf(LADDER)
            models.append(LADDER)
        except UserError:
            print(f"[efficientllm] {LADDER} is not installed: SmolLM2 only", file=sys.stderr)
    rows = []
    for model in models:
        for scheme in args.schemes if model != LADDER else args.ladder_schemes:
            print(f"[efficientllm] {model} {scheme} ...", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--worker", model, scheme]
            command += ["--limit", str(args.limit), "--max-tokens", str(args.max_tokens)]
            command += ["--batch-size", str(args.batch_size)]
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [x for x in done.stdout.splitlines() if x.startswith("ROW ")]
            if done.returncode != 0 or not lines:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{model} {scheme} failed")
            rows.append(json.loads(lines[-1][4:]))
            print(f"[efficientllm]   {time.perf_counter() - began:.0f} s", file=sys.stderr)
    _print(rows, args)


def _print(rows: list[dict], args: argparse.Namespace) -> None:
    """The table, then the claim checked for each model."""
    from llm_eff.backends.calibration import machine_id

    print(f"\nmachine: {machine_id()}; device: {rows[0]['device']}")
    print(
        f"efficiency benchmark, first {args.limit} tasks, greedy, max {args.max_tokens} tokens, "
        f"batch {args.batch_size}; perplexity of all 24 reference solutions given the prompt; "
        f"price: {', '.join(sorted({s for r in rows for s in r['price_sources']}))}\n"
    )
    print(
        "| model | weights | pass@1 | perplexity | weight MiB | decoder-layer MiB | "
        "compression | peak / final RSS MiB | memory util. | compute util. | TTFT p50 | TPOT p50 | "
        "batch tokens/s | energy / task | $ / task | cost-of-pass |"
    )
    print("|---" * 16 + "|")
    mib = 1 / 2**20
    for r in rows:
        energy = _fmt(r["energy_j_per_attempt"], ",.1f", unit=" J")
        cop = r["cost_of_pass"]
        print(
            f"| {r['model']} | {r['quant']} | {100 * r['accuracy']:.1f}% | "
            f"{r['perplexity']:.3f} | {r['weights_bytes'] * mib:,.1f} | "
            f"{r['layer_bytes'] * mib:,.1f} | {r['compression_rate']:.2f}x | "
            f"{r['peak_rss'] * mib:,.0f} / {r['resident'] * mib:,.0f} | "
            f"{_fmt(r['memory_utilization'], '.2f', 100, '%')} | "
            f"{_fmt(r['compute_utilization'], '.2f', 100, '%')} | "
            f"{_fmt(r['ttft_p50_s'], '.2f', unit=' s')} | "
            f"{_fmt(r['tpot_p50_s'], '.0f', 1000, ' ms')} | "
            f"{r['throughput_tokens_per_s']:,.0f} | "
            f"{'not measured' if energy == '-' else energy} | "
            f"${r['dollars_per_attempt']:.3g} | "
            f"{'∞ (no pass)' if not math.isfinite(cop) else f'${cop:.3g}'} |"
        )
    print()
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["scheme"]: r for r in rows if r["model"] == model}
        if "int4" not in by or "fp32" not in by:
            continue
        four = by["int4"]
        for base in ("fp32", "bf16"):
            if base not in by:
                continue
            b = by[base]
            whole = b["weights_bytes"] / four["weights_bytes"]
            layers = b["layer_bytes"] / four["layer_bytes"]
            points = 100 * (b["accuracy"] - four["accuracy"])
            ppl = 100 * (four["perplexity"] / b["perplexity"] - 1)
            verdicts = {
                "weight memory >= 3x": whole >= 3,
                "<= 5 points of accuracy": points <= 5,
                "<= 10% perplexity": ppl <= 10,
            }
            said = "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in verdicts.items())
            vacuous = " (accuracy 0 in both: uninformative)" if b["accuracy"] == 0 else ""
            print(
                f"{model}: int4 vs {base}: weight memory {whole:.2f}x smaller (decoder layers "
                f"{layers:.2f}x), accuracy {-points:+.1f} points, perplexity {ppl:+.1f}%, TPOT "
                f"{four['tpot_p50_s'] / b['tpot_p50_s']:.2f}x: {said}{vacuous}"
            )


if __name__ == "__main__":
    main()
