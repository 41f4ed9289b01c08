"""Mixture-of-Recursions against vanilla Llama models trained from scratch at equal FLOPs.

    .venv/bin/python benchmarks/mor.py [--preset cpu|gpu] [--models vanilla-8,mor-3,...]
        [--budget-steps N] [--corpus runs/mor/corpus] [--out runs/mor]

Trains every model on the Python standard library's source (split by file) until it has spent
the FLOPs that the full-depth vanilla model spends in `--budget-steps` steps, then prints, per
model: parameters (all / outside the embeddings), training tokens and FLOPs, validation
perplexity, mean layers per token, and greedy generation tokens/s at batch 1 and batch 16 with
the same prompt length. Model names: `vanilla-L` is a Llama of L layers; `mor-N` has the
full-depth model's L layers of effective depth with Middle-Cycle sharing and N recursions
(expert-choice router, recursion-wise KV cache); suffixes `-token` and `-shared` pick the
token-choice router and recursive KV sharing. The `cpu` preset is a small smoke-scale run; the
`gpu` preset is the one whose numbers the README reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {
    "cpu": dict(
        hidden=128,
        intermediate=344,
        heads=4,
        kv_heads=2,
        depth=8,
        seq_len=128,
        batch=8,
        budget_steps=60,
        lr=3e-3,
        new_tokens=32,
        prompt_len=32,
        val_batches=8,
    ),
    "gpu": dict(
        hidden=512,
        intermediate=1536,
        heads=8,
        kv_heads=4,
        depth=14,
        seq_len=512,
        batch=32,
        budget_steps=500,
        lr=2e-3,
        new_tokens=128,
        prompt_len=64,
        val_batches=16,
    ),
}


def spec_for(name: str, preset: dict):  # noqa: ANN201 - returns ModelSpec
    """The ModelSpec a model name stands for (see module docstring)."""
    from llm_eff.mor.train import ModelSpec

    shape = dict(
        hidden=preset["hidden"],
        intermediate=preset["intermediate"],
        heads=preset["heads"],
        kv_heads=preset["kv_heads"],
    )
    kind, _, rest = name.partition("-")
    number, *flags = rest.split("-")
    if kind == "vanilla" and number.isdigit():
        return ModelSpec(name, "llama", int(number), **shape)
    if kind == "mor" and number.isdigit() and set(flags) <= {"token", "shared"}:
        router = "token" if "token" in flags else "expert"
        kv = "shared" if "shared" in flags else "recursion"
        return ModelSpec(
            name,
            "mor",
            preset["depth"],
            recursions=int(number),
            router=router,
            kv_cache=kv,
            **shape,
        )
    raise SystemExit(f"unknown model '{name}' (vanilla-L or mor-N[-token][-shared])")


def main() -> None:
    """Train every model to the same FLOPs budget, evaluate, time generation, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument(
        "--models",
        default=None,
        help="default: vanilla-L, the vanilla model with mor-3's parameters, mor-2, mor-3",
    )
    parser.add_argument("--budget-steps", type=int, default=None)
    parser.add_argument("--corpus", type=Path, default=ROOT / "runs" / "mor" / "corpus")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mor")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    preset = dict(PRESETS[args.preset])
    if args.budget_steps:
        preset["budget_steps"] = args.budget_steps

    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from llm_eff.mor.train import (
        build_corpus,
        generation_speed,
        make_model,
        parameter_counts,
        result_row,
        train_flops_per_token,
        train_to_budget,
        validation_perplexity,
    )

    console = Console(width=170)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_ids, val_ids, vocab = build_corpus(args.corpus)
    console.print(
        f"corpus: {len(train_ids):,} train / {len(val_ids):,} validation tokens, "
        f"vocab {vocab:,}, device {device}"
    )
    depth = preset["depth"]
    names = args.models or f"vanilla-{depth},vanilla-{2 + (depth - 2) // 3},mor-2,mor-3"
    specs = [spec_for(n.strip(), preset) for n in names.split(",") if n.strip()]
    reference = make_model(specs[0], vocab, args.seed)
    per_token = train_flops_per_token(reference, specs[0].layers, preset["seq_len"])
    budget = per_token * preset["batch"] * preset["seq_len"] * preset["budget_steps"]
    console.print(
        f"budget: {budget:.3g} training FLOPs ({preset['budget_steps']} steps of {specs[0].name})"
    )
    gen = torch.Generator().manual_seed(args.seed)
    starts = torch.randint(0, len(val_ids) - preset["prompt_len"], (16,), generator=gen)
    prompts = torch.stack(
        [torch.from_numpy(val_ids[s : s + preset["prompt_len"]].astype("int64")) for s in starts]
    ).to(device)
    rows = []
    precision = "bf16" if device == "cuda" else "no"
    for spec in specs:
        model = (reference if spec is specs[0] else make_model(spec, vocab, args.seed)).to(device)
        reference = None  # the budget's reference is the first model trained; no second handle
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"train {spec.name}", total=1.0)
            trained = train_to_budget(
                model,
                train_ids,
                budget,
                batch_size=preset["batch"],
                seq_len=preset["seq_len"],
                lr=preset["lr"],
                seed=args.seed,
                mixed_precision=precision,
                on_step=lambda p, t=task: bar.update(t, completed=p),
            )
        ppl, val_layers = validation_perplexity(
            model,
            val_ids,
            seq_len=preset["seq_len"],
            batches=preset["val_batches"],
            batch_size=preset["batch"],
        )
        if device == "cuda":
            model = model.to(torch.bfloat16)
        speed1, _ = generation_speed(model, prompts[:1], preset["new_tokens"])
        speed16, gen_layers = generation_speed(model, prompts, preset["new_tokens"])
        counts = parameter_counts(model)
        rows.append(
            result_row(
                spec,
                params=counts["total"],
                non_embedding_params=counts["non_embedding"],
                train_steps=trained.steps,
                train_tokens=trained.tokens,
                train_flops=trained.flops,
                train_s=round(trained.seconds, 1),
                train_layers=round(trained.mean_layers, 2),
                val_ppl=round(ppl, 3),
                val_layers=round(val_layers, 2),
                gen_layers=round(gen_layers, 2),
                tok_s_b1=round(speed1, 1),
                tok_s_b16=round(speed16, 1),
            )
        )
        console.print(
            f"{spec.name}: ppl {ppl:.2f}, {trained.steps} steps in "
            f"{trained.seconds:.0f} s, {speed1:.0f} / {speed16:.0f} tok/s"
        )
        del model
        args.out.mkdir(parents=True, exist_ok=True)  # after every model: a cut-off run keeps rows
        out = args.out / f"mor_{args.preset}.json"
        out.write_text(json.dumps({"preset": preset, "device": device, "rows": rows}, indent=2))
    base = rows[0]
    table = Table(title=f"MoR vs vanilla at equal training FLOPs ({args.preset} preset, {device})")
    for col in (
        "model",
        "params",
        "non-emb",
        "train tokens",
        "train FLOPs",
        "val ppl",
        "layers/token (val, gen)",
        "tok/s b1",
        "tok/s b16",
        "x b1",
        "x b16",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['params'] / 1e6:.2f}M",
            f"{r['non_embedding_params'] / 1e6:.2f}M",
            f"{r['train_tokens'] / 1e6:.2f}M",
            f"{r['train_flops']:.3g}",
            f"{r['val_ppl']:.2f}",
            f"{r['val_layers']:.2f}, {r['gen_layers']:.2f}",
            f"{r['tok_s_b1']:.0f}",
            f"{r['tok_s_b16']:.0f}",
            f"{r['tok_s_b1'] / base['tok_s_b1']:.2f}",
            f"{r['tok_s_b16'] / base['tok_s_b16']:.2f}",
        )
    console.print(table)
    console.print(f"results: {out}")


if __name__ == "__main__":
    main()
