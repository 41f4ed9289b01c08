"""Training memory, speed, adapter size and Spider score of each tuning method, side by side.

    .venv/bin/python benchmarks/peft_memory.py [--methods full lora bit1 lst unipt]
        [--model smollm2-135m] [--steps 3] [--batch-size 8] [--seq-len 512]
        [--quality-steps 0] [--eval-limit 40] [--spider tests/data/spider]

Memory phase: every method trains for the same `--steps` on batches of exactly
`--batch-size` x `--seq-len` tokens (Spider prompts and SQL packed into rows), each in a fresh
subprocess; peak training memory is the CUDA allocator peak on GPU, or the peak resident set
size above the loaded model on CPU. Quality phase (`--quality-steps N`): each method trains N
steps on questions from one set of Spider databases and is scored by sqlglot-normalised exact
match on questions from databases it never saw. Prints one table; `--json FILE` keeps the rows.
Rows say which device produced them; qlora joins the methods by default on a CUDA machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_spider_files(spider: Path, out: Path, seed: int) -> tuple[Path, Path, list[str]]:
    """train.jsonl and test.jsonl (split by database); returns their paths and the test dbs."""
    from evals.benchmarks.spider import (
        load_schemas,
        load_spider,
        split_by_database,
        to_prompt_completion,
    )

    schemas = load_schemas(spider / "tables.json")
    train, test = split_by_database(load_spider(spider / "dev.json"), 0.3, seed)
    paths = []
    for name, rows in (("train", train), ("test", test)):
        path = out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in to_prompt_completion(rows, schemas)))
        paths.append(path)
    return paths[0], paths[1], sorted({e.db_id for e in test})


def fp16_lora_bytes(out_dir: Path, tmp: Path) -> int:
    """Size of the same LoRA adapter saved in fp16 (peft's state dict, safetensors)."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(out_dir / "adapter_model.safetensors"))
    path = tmp / "lora_fp16.safetensors"
    save_file({k: v.to(torch.float16) for k, v in state.items()}, str(path))
    return path.stat().st_size


def worker(args: argparse.Namespace) -> None:
    """One method, one phase, in this (fresh) process; prints its row as JSON."""
    from llm_eff.peft.config import MethodConfig
    from llm_eff.peft.train import TrainConfig, finetune

    tmp = Path(args.workdir)
    memory = args.phase == "memory"
    train = TrainConfig(
        steps=args.steps if memory else args.quality_steps,
        batch_size=args.batch_size,
        max_length=args.seq_len,
        pack=memory,
        eval_limit=0 if memory else args.eval_limit,
        eval_fraction=0.0,
        metric="sql",
        max_new_tokens=96,
    )
    out = tmp / f"{args.worker}-{args.phase}"
    row = finetune(
        args.model,
        tmp / "train.jsonl",
        out,
        MethodConfig(args.worker, rank=args.rank, reduction=args.reduction),
        train,
        eval_data=None if memory else tmp / "test.jsonl",
        overwrite=True,
    )
    if args.worker == "lora":
        row["fp16_adapter_bytes"] = fp16_lora_bytes(out, tmp)
    print("ROW " + json.dumps(row), flush=True)


def run_worker(method: str, phase: str, args: argparse.Namespace, workdir: Path) -> dict:
    """Run one worker subprocess and return its row (or the error)."""
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--phase",
        phase,
        "--workdir",
        str(workdir),
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--quality-steps",
        str(args.quality_steps),
        "--batch-size",
        str(args.batch_size),
        "--seq-len",
        str(args.seq_len),
        "--eval-limit",
        str(args.eval_limit),
        "--rank",
        str(args.rank),
        "--reduction",
        str(args.reduction),
    ]
    # large blocks straight from mmap, returned to the OS when freed: RSS then follows the
    # tensors alive instead of what glibc's heap keeps after a free
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"method": method, "error": tail}


def machine() -> str:
    """The device the rows come from."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU {os.cpu_count()} cores ({platform.machine()})"


def main() -> None:
    """Run the phases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quality-steps", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--eval-limit", type=int, default=40)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--reduction", type=int, default=8)
    parser.add_argument("--spider", type=Path, default=ROOT / "tests" / "data" / "spider")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from llm_eff.peft.table import human_bytes

    methods = args.methods or ["full", "lora", "bit1", "lst", "unipt"] + (
        ["qlora"] if torch.cuda.is_available() else []
    )
    console = Console(width=200)
    device = machine()
    with tempfile.TemporaryDirectory(prefix="llm-eff-peft-") as tmp:
        workdir = Path(tmp)
        _, _, test_dbs = write_spider_files(args.spider, workdir, args.seed)
        console.print(
            f"device: {device}; model {args.model}; memory phase {args.steps} steps of "
            f"{args.batch_size} x {args.seq_len} tokens; held-out Spider databases: "
            f"{', '.join(test_dbs)}"
        )
        phases = ["memory"] + (["quality"] if args.quality_steps else [])
        rows: dict[str, dict[str, dict]] = {m: {} for m in methods}
        with Progress(console=console) as bar:
            task = bar.add_task("methods", total=len(methods) * len(phases))
            for phase in phases:
                for method in methods:
                    bar.update(task, description=f"{method} ({phase})")
                    rows[method][phase] = run_worker(method, phase, args, workdir)
                    bar.advance(task)
    full_mb = rows.get("full", {}).get("memory", {}).get("peak_train_mb")
    lora_fp16 = rows.get("lora", {}).get("memory", {}).get("fp16_adapter_bytes")
    table = Table(
        "method",
        "trainable params",
        "peak train MiB",
        "vs full",
        "step s",
        "tokens/s",
        "adapter file",
        "vs fp16 LoRA",
        "Spider EM (held-out dbs)",
        "held-out loss",
        "device",
    )
    for method in methods:
        mem = rows[method]["memory"]
        if "error" in mem:
            table.add_row(method, *["-"] * 9, f"failed: {mem['error'][:80]}")
            continue
        quality = rows[method].get("quality", {})
        peak = mem["peak_train_mb"]
        size = mem["adapter_bytes"]
        em = quality.get("score")
        table.add_row(
            method,
            f"{mem['trainable_params']:,}",
            f"{peak:,.0f}",
            f"{peak / full_mb:.0%}" if full_mb else "-",
            f"{mem['step_s']:.2f}",
            f"{mem['tokens_per_s']:,.0f}",
            human_bytes(size),
            f"{lora_fp16 / size:.1f}x smaller" if lora_fp16 and method == "bit1" else "-",
            f"{em:.1%} of {quality['n_scored']}" if em is not None else "-",
            f"{quality['heldout_loss']:.3f}" if "heldout_loss" in quality else "-",
            device,
        )
    console.print(table)
    if lora_fp16:
        console.print(f"fp16 LoRA adapter file (rank {args.rank}): {human_bytes(lora_fp16)}")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
