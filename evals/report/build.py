"""Cost report from run logs: `report.md` (+ PNG plots) and a self-contained `report.html`.

Everything is rebuilt from the per-attempt run logs, so a report never needs the models again.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

from evals.metrics.cost_of_pass import frontier_cost_of_pass
from evals.metrics.summary import SystemSummary, summarize
from evals.metrics.tep import tep
from evals.report import plots
from llm_eff.core.atomic import atomic_write
from llm_eff.core.errors import UserError
from llm_eff.core.prices import PRICING_NOTE
from llm_eff.core.runlog import RunLog
from llm_eff.core.types import Attempt

TIMING_NOTE = """\
Timings: "latency" is when an answer was ready, from its request: a batch's answers come back
together, so they share the batch's wall time. "TTFT / TPOT" are per answer: time to its first
token, then time per output token after it (a batch decodes in lockstep, so its answers share
one pace). "batch tokens/s" is prompt + completion tokens processed per second by the batches,
the median over them; '-' where a backend does not measure it (API models)."""

PLOTS = {
    "accuracy_vs_cost": (
        "Accuracy vs $ per task, with the cost-efficiency frontier",
        plots.accuracy_vs_cost,
    ),
    "cost_of_pass": ("Cost-of-pass with 95% bootstrap interval", plots.cost_of_pass_bars),
    "tokens": ("Tokens per task", plots.tokens_per_task),
    "categories": ("Accuracy by category", plots.accuracy_by_category),
    "efficiency": ("EfficientLLM's six axes, one panel each", plots.efficiency_axes),
}

EFFICIENCY_NOTE = (
    "Local models only (API models are '-'). Memory utilization: peak memory (GPU memory, or "
    "the process's peak RSS on CPU) over the device's capacity (GPU memory; RAM or the cgroup "
    "limit). Compute utilization: useful FLOPs (2 × weights × tokens) per second of the batch "
    "over the device's peak, measured by a matmul probe in the model's dtype. Energy: the "
    "device's counter (NVML on NVIDIA GPUs, RAPL on CPU) over the batch, split over its answers "
    "by their work; it includes anything else the device ran meanwhile; 'not measured' where "
    "no counter was readable. Compression: the model's 16-bit size over the bytes its weights "
    "occupy (fp32 is 0.5; embeddings left in float count)."
)


@dataclass
class ReportFiles:
    """Where a report was written."""

    markdown: Path
    html: Path
    summary_json: Path


def _money(x: float, infinite: str = "∞ (no pass)") -> str:
    if not math.isfinite(x):
        return infinite
    return f"${x:.3g}" if x < 0.01 else f"${x:,.4f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _mem(b: int | None) -> str:
    return "n/a" if not b else f"{b / 2**20:,.0f} MiB"


def summary_rows(summaries: list[SystemSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table."""
    ks = sorted({k for s in summaries for k, v in s.pass_at_k.items() if v is not None and k > 1})
    header = [
        "system",
        "tasks",
        "attempts",
        "pass@1",
        *[f"pass@{k}" for k in ks],
        "cost-of-pass [95% CI]",
        "$ / task",
        "tokens / task",
        "latency p50 / p95",
        "TTFT / TPOT p50",
        "batch tokens/s",
        "peak memory",
    ]
    timed = any(s.program_runtime_s is not None for s in summaries)
    routed = any(s.layers_per_attempt is not None for s in summaries)
    header += ["program runtime p50"] * timed + ["layers executed"] * routed
    rows = []
    for s in summaries:
        low, high = _money(s.cost_of_pass_low, "∞"), _money(s.cost_of_pass_high, "∞")
        ci = f"{_money(s.cost_of_pass)} [{low}, {high}]"
        rows.append(
            [
                s.system,
                str(s.tasks),
                str(s.attempts),
                _pct(s.accuracy),
                *[_pct(s.pass_at_k.get(k)) for k in ks],
                ci,
                _money(s.dollars_per_attempt),
                f"{s.tokens_per_attempt:,.0f}",
                f"{s.latency_p50_s:.2f} / {s.latency_p95_s:.2f} s",
                _token_times(s),
                f"{s.throughput_tokens_per_s:,.0f}",
                _mem(s.peak_memory_bytes),
                *(
                    [
                        "n/a"
                        if s.program_runtime_s is None
                        else f"{s.program_runtime_s * 1e3:.3f} ms"
                    ]
                    * timed
                ),
                *(
                    ["n/a" if s.layers_per_attempt is None else f"{s.layers_per_attempt:.1f}"]
                    * routed
                ),
            ]
        )
    return header, rows


def efficiency_rows(summaries: list[SystemSummary]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the EfficientLLM table: the six axes per system."""
    header = [
        "system",
        "weights",
        "compression",
        "peak memory",
        "memory util.",
        "compute util.",
        "TTFT / TPOT p50",
        "batch tokens/s",
        "energy / task",
    ]
    rows = []
    for s in summaries:
        local = s.quant is not None or s.memory_utilization is not None
        energy = (
            f"{s.energy_j_per_attempt:,.2f} J"
            if s.energy_j_per_attempt is not None
            else ("not measured" if local else "-")
        )
        rows.append(
            [
                s.system,
                s.quant or "-",
                "-" if s.compression_rate is None else f"{s.compression_rate:.2f}x",
                _mem(s.peak_memory_bytes) if local else "-",
                _pct(s.memory_utilization) if s.memory_utilization is not None else "-",
                _pct(s.compute_utilization) if s.compute_utilization is not None else "-",
                _token_times(s),
                f"{s.throughput_tokens_per_s:,.0f}" if local else "-",
                energy,
            ]
        )
    return header, rows


def tep_rows(summaries: list[SystemSummary], base: SystemSummary | None = None) -> list[list[str]]:
    """TEP of each system against `base` (default: the first system), with its verdict."""
    base = base or summaries[0]
    rows = []
    for s in summaries:
        if s is base:
            continue
        t = tep(s.accuracy, s.tokens_per_attempt, base.accuracy, base.tokens_per_attempt)
        value = "n/a" if t.value is None else f"{t.value:+.3f}"
        rows.append(
            [s.system, base.system, value, f"{t.d_perf:+.3f}", f"{t.d_tokens:+.1f}", t.verdict]
        )
    return rows


def load_attempts(paths: list[str | Path]) -> list[Attempt]:
    """All attempts of the given run logs; UserError if none."""
    attempts: list[Attempt] = []
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"run log not found: {path}")
        attempts.extend(RunLog(path).read())
    if not attempts:
        raise UserError("the run log(s) hold no attempts yet: run `llm-eff eval` first")
    return attempts


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(
    summaries: list[SystemSummary], human_cost: float | None = None
) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) for the tables of one benchmark."""
    header, rows = summary_rows(summaries)
    values = {s.system: s.cost_of_pass for s in summaries}
    best, value = frontier_cost_of_pass(values, human_cost)
    note = (
        f"Frontier cost-of-pass: {_money(value)} ({best})."
        if math.isfinite(value)
        else "No system passed any task: the frontier cost-of-pass is infinite."
    )
    if human_cost is not None:
        note += f" A human expert is priced at {_money(human_cost)} per task."
    out = [("Systems", header, rows, note)]
    if len(summaries) > 1:
        out.append(
            (
                "Token elasticity of performance (TEP) against " + summaries[0].system,
                ["system", "baseline", "TEP", "dP", "dT (tokens)", "verdict"],
                tep_rows(summaries),
                "A system with dT < 0 and dP >= 0 dominates its baseline, "
                "whatever the sign of TEP.",
            )
        )
        dearest = max(summaries, key=lambda s: s.tokens_per_attempt)
        if dearest is not summaries[0] and len(summaries) > 2:  # e.g. always-advanced
            out.append(
                (
                    "TEP against the most token-hungry system, " + dearest.system,
                    ["system", "baseline", "TEP", "dP", "dT (tokens)", "verdict"],
                    tep_rows(summaries, dearest),
                    "Systems that save tokens (dT < 0) and lose no accuracy dominate it.",
                )
            )
    if any(s.quant or s.memory_utilization is not None for s in summaries):
        out.append(("EfficientLLM", *efficiency_rows(summaries), EFFICIENCY_NOTE))
    cats = sorted({c for s in summaries for c in s.by_category})
    out.append(
        (
            "Accuracy by category",
            ["system", *cats],
            [[s.system, *[_pct(s.by_category.get(c)) for c in cats]] for s in summaries],
            "",
        )
    )
    reasons = sorted({r for s in summaries for r in s.reasons})
    out.append(
        (
            "Outcomes",
            ["system", *reasons],
            [[s.system, *[str(s.reasons.get(r, 0)) for r in reasons]] for s in summaries],
            "Why attempts failed, as the sandbox reported it.",
        )
    )
    prices = [[s.system, ", ".join(s.price_sources), _money(s.dollars_total)] for s in summaries]
    out.append(
        (
            "Prices used",
            ["system", "price source", "total $"],
            prices,
            "local@$X/h: hardware $/hour over measured tokens/s, i.e. $ per 1M tokens = "
            "X / (3600 × tokens/s) × 1,000,000 (prompt + completion tokens over the batch "
            "wall time); litellm: the provider's usage priced with LiteLLM's cost map; "
            "reference: no model, no cost.",
        )
    )
    return out


REPORT_FILES = ("report.md", "report.html", "summary.json")


def is_foreign_folder(out: Path) -> bool:
    """True when `out` is a file, or a folder with entries that is not an earlier report."""
    if not out.exists():
        return False
    if not out.is_dir():
        return True
    names = {p.name for p in out.iterdir()}
    return bool(names) and not (names <= {*REPORT_FILES, "plots"} and "summary.json" in names)


def write_report(
    run_logs: list[str | Path],
    out_dir: str | Path,
    title: str = "llm-eff cost report",
    human_cost: float | None = None,
    attempts: list[Attempt] | None = None,
    overwrite: bool = False,
) -> ReportFiles:
    """Write report.md, report.html (plots embedded) and summary.json into `out_dir`.

    `human_cost`: a human expert's $ per task, included in the frontier cost-of-pass.
    `attempts`: attempts from elsewhere (e.g. a proxy's spend log) added to the run logs'.
    An earlier report in `out_dir` is replaced; a folder holding anything else is refused
    unless `overwrite`.
    """
    attempts = (load_attempts(run_logs) if run_logs else []) + list(attempts or [])
    if not attempts:
        raise UserError("nothing to report: no attempts")
    summaries = summarize(attempts)
    out = Path(out_dir)
    if is_foreign_folder(out) and not overwrite:
        raise UserError(
            f"{out} exists and is not an llm-eff report folder: choose another --out "
            "(or pass --overwrite to write the report into it anyway)"
        )
    for old in (out / "plots").glob("*.png") if out.is_dir() else ():
        old.unlink()  # plots of an earlier report, rewritten below for what is reported now
    try:
        (out / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create report folder {out}: {exc.strerror}") from None
    benchmarks: dict[str, list[SystemSummary]] = {}
    for s in summaries:
        benchmarks.setdefault(s.benchmark, []).append(s)
    sources = ", ".join(str(p) for p in run_logs)
    md = [f"# {title}", "", f"Run log(s): {sources}. {len(attempts)} attempts.", ""]
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Run log(s): {html.escape(sources)}. {len(attempts)} attempts.</p>",
    ]
    for bench, group in benchmarks.items():
        md += [f"## {bench}", ""]
        body.append(f"<h2>{html.escape(bench)}</h2>")
        for name, header, rows, note in _sections(group, human_cost):
            md += [f"### {name}", "", _md_table(header, rows), "", note, ""]
            body += [
                f"<h3>{html.escape(name)}</h3>",
                _html_table(header, rows),
                f"<p class='note'>{html.escape(note)}</p>",
            ]
        slug = "".join(ch if ch.isalnum() else "-" for ch in bench)
        for key, (caption, plot) in PLOTS.items():
            png = plot(group)
            if png is None:  # nothing of its kind measured (e.g. no local model)
                continue
            file = f"plots/{slug}-{key}.png"
            atomic_write(out / file, png)
            md += [f"![{caption}]({file})", ""]
            encoded = base64.b64encode(png).decode()
            body.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    pricing_note = PRICING_NOTE + "\n\n" + TIMING_NOTE
    md += ["## How costs are computed", "", pricing_note, ""]
    body += ["<h2>How costs are computed</h2>", f"<pre>{html.escape(pricing_note)}</pre>"]
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    files = ReportFiles(out / "report.md", out / "report.html", out / "summary.json")
    atomic_write(files.markdown, "\n".join(md))
    atomic_write(files.html, page)
    atomic_write(
        files.summary_json, json.dumps([s.to_dict() for s in summaries], indent=2, default=str)
    )
    return files


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d232a;padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f5f7}
figure{display:inline-block;margin:.5rem 1rem .5rem 0}
img{max-width:520px;border:1px solid #e4e8eb}
figcaption{font-size:.85rem;color:#57606a}
.note{color:#57606a;font-size:.9rem}
pre{background:#f6f8fa;padding:1rem;white-space:pre-wrap}
"""


def _token_times(s: SystemSummary) -> str:
    """Median time to first token and time per output token, per answer ('-' unmeasured)."""
    if s.ttft_p50_s is None:
        return "-"
    tpot = "-" if s.tpot_p50_s is None else f"{s.tpot_p50_s * 1000:.0f} ms"
    return f"{s.ttft_p50_s:.2f} s / {tpot}"
