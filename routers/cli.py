"""`llm-eff route bench|train|calibrate`: routers from recorded outcomes and run logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_eff.core.cli import TABLE_FORMATS, Commands, friendly, make_console, print_rows
from llm_eff.core.errors import UserError

COMMANDS = Commands()

route_app = typer.Typer(
    help="Complexity-aware routing: benchmarks on recorded outcomes.", no_args_is_help=True
)
COMMANDS.group(route_app, "route")


@route_app.command("bench")
@friendly
def route_bench(
    data: Annotated[
        Path,
        typer.Option(
            help="Outcome CSV file or folder (RouteLLM's shape: "
            "prompt + one True/False column per model), e.g. the routellm/mmlu folder."
        ),
    ],
    test_data: Annotated[
        Path | None,
        typer.Option(
            help="Score on this outcome file or folder instead of a held-out part of --data "
            "(out-of-domain: train on all of --data; the same strong and weak columns)."
        ),
    ] = None,
    strong: Annotated[str, typer.Option(help="Column of the strong model.")] = "gpt-4-1106-preview",
    weak: Annotated[
        str, typer.Option(help="Column of the weak model.")
    ] = "mistralai/Mixtral-8x7B-Instruct-v0.1",
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="JSONL of prompts to drop (field "
            "eval_prompt). Default: mmlu_contaminated_prompts.jsonl beside the "
            "folder, if present."
        ),
    ] = None,
    strong_price: Annotated[
        str, typer.Option(help="LiteLLM id pricing the strong model.")
    ] = "gpt-4-1106-preview",
    weak_price: Annotated[
        str, typer.Option(help="LiteLLM id pricing the weak model.")
    ] = "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
    seed: Annotated[int, typer.Option(help="Seed of the (first) split.")] = 0,
    seeds: Annotated[
        int,
        typer.Option(
            min=1,
            help="Number of splits (seeds seed, seed+1, ...); numbers are means over them, "
            "APGR with its standard deviation.",
        ),
    ] = 1,
    split: Annotated[
        str,
        typer.Option(
            help="groups: hold out whole groups (subjects); questions: hold out random "
            "questions, groups seen in training (RouteLLM's MMLU-augmented setting)."
        ),
    ] = "groups",
    label: Annotated[
        str,
        typer.Option(
            help="Training label of the learned routers: gain (1 only strong right, 0 only "
            "weak right, 0.5 a tie) or cheapest (1 only strong right, 0 weak right; prompts "
            "both got wrong dropped)."
        ),
    ] = "gain",
    small_lm: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also train the SmolLM2 classifier and DPO routers on this many training "
            "prompts (class-balanced sample; slow on CPU). 0: skip them.",
        ),
    ] = 0,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Output of the results table: table (rich), md (Markdown), csv or json; "
            "md/csv/json print the table alone on stdout, never cut at the terminal's width.",
        ),
    ] = "table",
) -> None:
    """Train routers on half the subjects (or all of --data), score the rest (or --test-data):
    APGR, CPT, AIQ, cost-of-pass, decision latency."""
    from llm_eff.core.prices import api_price
    from routers.bench import PUBLISHED, run_bench
    from routers.outcomes import load_outcomes

    if exclude is None and data.is_dir():
        guess = data.parent / "mmlu_contaminated_prompts.jsonl"
        exclude = guess if guess.is_file() else None
    prices = {}
    for side, model in (("strong", strong_price), ("weak", weak_price)):
        price = api_price(model)
        if price is None:
            raise UserError(f"no list price for '{model}' in LiteLLM's cost map (--{side}-price)")
        prices[side] = price
    if fmt not in TABLE_FORMATS:
        raise UserError(f"unknown --format '{fmt}' (use {', '.join(TABLE_FORMATS)})")
    console = make_console(stderr=fmt != "table")  # md/csv/json: stdout holds the table only
    with console.status("embedding prompts and training routers ..."):
        results, facts = run_bench(
            load_outcomes(data, exclude),
            strong,
            weak,
            prices["strong"],
            prices["weak"],
            seed,
            small_lm=small_lm,
            seeds=seeds,
            split=split,
            label=label,
            test_outcomes=load_outcomes(test_data, exclude) if test_data else None,
        )
    if test_data:
        held = f"trained on all of {data}, scored on {test_data}"
    elif split == "groups":
        held = (
            f"held out {facts['test_groups']} of "
            f"{facts['test_groups'] + facts['train_groups']} groups"
        )
    else:
        held = "held out half the questions (all groups seen in training)"
    console.print(
        f"{held} ({facts['test_prompts']} prompts; trained on {facts['train_prompts']}; "
        f"{label} labels; {seeds} split{'s' if seeds > 1 else ''}, means shown). "
        f"strong {facts['strong_accuracy']:.1%} at ${facts['strong_cost_per_query']:.6f}/query, "
        f"weak {facts['weak_accuracy']:.1%} at ${facts['weak_cost_per_query']:.6f}/query"
    )
    header = [
        "router",
        "APGR",
        "CPT(50%)",
        "CPT(80%)",
        "AIQ",
        "$/query at strong accuracy",
        "cost-of-pass at CPT(50%)",
        "decision ms (p50)",
    ]
    rows = [
        [
            r.name,
            f"{r.apgr:.3f}" + (f" ± {r.apgr_std:.3f}" if seeds > 1 else ""),
            f"{r.cpt50:.1%}",
            f"{r.cpt80:.1%}",
            f"{r.aiq:.4f}",
            "-" if r.cost_at_strong_accuracy is None else f"{r.cost_at_strong_accuracy:.6f}",
            f"{r.cost_of_pass_at_cpt50:.6f}",
            "-" if r.decision_ms is None else f"{r.decision_ms:.3f}",
        ]
        for r in results
    ]
    print_rows(header, rows, fmt)
    if (strong, weak) == ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"):
        console.print("RouteLLM's published CPT(50%) on MMLU for this pair (their training data):")
        for name, value in PUBLISHED:
            console.print(f"  {name}: {value}")


def _prompts_from(bench: str | None, prompts: Path | None) -> dict[str, str]:
    """id -> prompt from a benchmark spec or a prompts file (lines, or JSONL with 'prompt')."""
    if bench:
        from evals.benchmarks import load_benchmark

        return {t.id: t.prompt for t in load_benchmark(bench).tasks}
    if prompts is None:
        raise UserError("give --bench BENCH or --prompts FILE")
    if not prompts.is_file():
        raise UserError(f"prompts file not found: {prompts}")
    import json

    out = {}
    for i, line in enumerate(prompts.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                value = json.loads(line)["prompt"] if line.lstrip().startswith("{") else line
            except (json.JSONDecodeError, KeyError):
                raise UserError(f"{prompts}:{i}: expected a JSON object with 'prompt'") from None
            out[str(i)] = value
    return out


@route_app.command("train")
@friendly
def route_train(
    runs: Annotated[Path, typer.Option(help="Run log with both systems' attempts.")],
    bench: Annotated[str, typer.Option(help="The benchmark the run log is about (for prompts).")],
    strong: Annotated[str, typer.Option(help="Name of the strong system in the run log.")],
    weak: Annotated[str, typer.Option(help="Name of the weak system in the run log.")],
    out: Annotated[Path, typer.Option(help="Folder to save the router in.")],
    router: Annotated[
        str,
        typer.Option(
            help="knn or logistic (on MiniLM embeddings), slm (SmolLM2 + LoRA classifier) or "
            "dpo (SmolLM2 + LoRA tuned with trl's DPOTrainer)."
        ),
    ] = "knn",
    base: Annotated[str, typer.Option(help="Small LM for slm/dpo routers.")] = "smollm2-135m",
    label: Annotated[
        str | None,
        typer.Option(
            help="cheapest (1 if only the strong system passed, 0 if the weak one did; tasks "
            "neither passed are dropped) or gain (1 strong only, 0 weak only, 0.5 a tie: ranks "
            "by the accuracy the strong system adds). Default: gain for knn/logistic, cheapest "
            "for slm/dpo, which learn two classes."
        ),
    ] = None,
) -> None:
    """Train a router from an eval run log: labels from which system passed each task."""
    import numpy as np

    from llm_eff.core.runlog import RunLog
    from routers.knn import save_router
    from routers.registry import trainable_router
    from routers.slm import SMALL_LM
    from routers.training import routing_labels

    model = trainable_router(router, **({"base": base} if router in SMALL_LM else {}))
    if not runs.is_file():
        raise UserError(f"run log not found: {runs}")
    small = router in SMALL_LM
    label = label or ("cheapest" if small else "gain")
    if small and label != "cheapest":
        raise UserError(f"the {router} router learns two classes: use --label cheapest")
    labels = routing_labels(RunLog(runs).read(), strong, weak, label)
    prompts = _prompts_from(bench, None)
    ids = [t for t in labels if t in prompts]
    if not ids:
        raise UserError(f"no task of the run log is in {bench}")
    texts = [prompts[t] for t in ids]
    y = np.array([labels[t] for t in ids], dtype=np.float32)
    model.fit(texts, y)
    save_router(model, out)
    needs = sum(labels[t] == 1.0 for t in ids)
    typer.echo(
        f"trained {router} on {len(ids)} tasks ({label} labels; {needs} passed only by "
        f"{strong}); saved to {out}"
    )


@route_app.command("calibrate")
@friendly
def route_calibrate(
    router: Annotated[Path, typer.Option(help="Folder of a trained router.")],
    strong_share: Annotated[
        float,
        typer.Option(help="Share of calls to send to the strong target, e.g. 0.3.", min=0, max=1),
    ],
    bench: Annotated[str | None, typer.Option(help="Representative prompts: a benchmark.")] = None,
    prompts: Annotated[
        Path | None,
        typer.Option(help="Representative prompts: a file (one per line, or JSONL with 'prompt')."),
    ] = None,
) -> None:
    """Find the threshold that sends the requested share of calls to the strong target."""
    from routers.knn import load_router
    from routers.training import calibrate_threshold

    model = load_router(router)
    texts = list(_prompts_from(bench, prompts).values())
    scores = model.score_texts(texts)
    threshold = calibrate_threshold(scores.tolist(), strong_share)
    share = float((scores >= threshold).mean())
    typer.echo(
        f"threshold {threshold:.6f}: {share:.1%} of {len(texts)} prompts go strong; "
        f"use model name router-<name>-{threshold:.6f}"
    )


@route_app.command("train-any")
@friendly
def route_train_any(
    runs: Annotated[
        list[Path], typer.Option(help="Run log(s) in which every target answered the tasks.")
    ],
    bench: Annotated[
        list[str], typer.Option(help="The benchmark(s) the run logs are about (for prompts).")
    ],
    target: Annotated[
        list[str],
        typer.Option(
            help="An eval system to route to, as given to `llm-eff eval --system` (a model, "
            "MODEL:best-of-4, cascade:A>B, agent:CONFIG.yaml, drllm:..., an adapter folder); "
            "repeat for each target."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to save the router in.")],
    accuracy_floor: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="Keep at least this share of the best single target's pass rate (e.g. 0.97); "
            "default: the lowest cost per pass, whatever the pass rate.",
        ),
    ] = None,
    k: Annotated[int, typer.Option(min=1, help="Neighbouring training tasks per prediction.")] = 10,
) -> None:
    """Train one router over any eval systems from run logs in which they all answered.

    Per task it picks the target with the lowest expected cost per pass (within
    --accuracy-floor); use it as `llm-eff eval --system routed-any:OUT` or in the proxy."""
    from evals.benchmarks import load_benchmark
    from evals.systems import parse_system
    from llm_eff.core.runlog import RunLog
    from routers.any_router import AnyRouter, outcomes_by_target

    if len(target) < 2:
        raise UserError("give at least two --target systems to route between")
    attempts = []
    for path in runs:
        if not path.is_file():
            raise UserError(f"run log not found: {path}")
        attempts += RunLog(path).read()
    prompts: dict[tuple[str, str], str] = {}
    for spec in bench:
        loaded = load_benchmark(spec)
        prompts.update({(loaded.name, t.id): t.prompt for t in loaded.tasks})
    marks = {}
    for text in target:
        system = parse_system(text)
        marks[text] = {system.hash, system.name, text}
    tasks, passed, cost = outcomes_by_target(attempts, list(prompts), marks)
    router = AnyRouter(k=k, accuracy_floor=accuracy_floor)
    router.fit([prompts[t] for t in tasks], passed, cost)
    router.save(out)
    report = router.report
    console = make_console()
    header = ["target", "pass rate", "$ / task", "cost-of-pass"]
    rows = [
        [
            t,
            f"{report['pass_rate'][t]:.1%}",
            f"{report['cost_per_task'][t]:.6f}",
            _per_pass(report["cost_per_task"][t], report["pass_rate"][t]),
        ]
        for t in router.targets
    ]
    print_rows(header, rows)
    console.print(
        f"trained on {len(tasks)} tasks that every target answered; saved to {out}. "
        f"Its own choices on them, each made without that task (leave-one-out): pass rate "
        f"{report['leave_one_out_pass_rate']:.1%}, cost-of-pass "
        f"${report['leave_one_out_cost_per_pass']:.6f} (value of a pass ${router.value:.6f}). "
        f"Use: llm-eff eval --system routed-any:{out}"
    )


def _per_pass(dollars: float, rate: float) -> str:
    return f"{dollars / rate:.6f}" if rate else "inf"
