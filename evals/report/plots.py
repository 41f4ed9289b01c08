"""Report plots (matplotlib, Agg): each returns PNG bytes."""

from __future__ import annotations

import io
import math
from typing import Any

from evals.metrics.summary import SystemSummary


def _png(fig) -> bytes:  # noqa: ANN001 - a matplotlib Figure
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _figure(width: float = 6.4, height: float = 4.0):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points (cost, accuracy, name) not beaten by a cheaper-or-equal, at-least-as-accurate one."""
    front, best = [], -math.inf
    for cost, acc, name in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best:
            front.append((cost, acc, name))
            best = acc
    return front


def accuracy_vs_cost(summaries: list[SystemSummary]) -> bytes:
    """Accuracy against $ per task, with the cost-efficiency frontier."""
    return _png(accuracy_vs_cost_figure(summaries))


def accuracy_vs_cost_figure(summaries: list[SystemSummary]):  # noqa: ANN201 - a Figure
    """The accuracy-vs-cost figure; labels stay inside the axes (right-hand points are
    labelled to their left), and the frontier is drawn only when it joins two or more points."""
    fig, ax = _figure()
    points = [(s.dollars_per_attempt, s.accuracy, s.system) for s in summaries]
    costs = [p[0] for p in points]
    middle = (min(costs) + max(costs)) / 2 if costs else 0.0
    labels = []
    for cost, acc, name in points:
        ax.scatter([cost], [acc], s=60, zorder=3)
        right_half = max(costs) > min(costs) and cost > middle
        labels.append(
            ax.annotate(
                name,
                (cost, acc),
                textcoords="offset points",
                xytext=(-6, 4) if right_half else (6, 4),
                ha="right" if right_half else "left",
                va="top" if acc > 0.9 else "bottom",
                fontsize=8,
            )
        )
    front = pareto_front(points)
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="grey", label="frontier")
        ax.legend(fontsize=8)
    ax.margins(x=0.15)
    ax.set_xlabel("$ per task (mean)")
    ax.set_ylabel("accuracy (pass@1)")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy vs cost")
    _separate(fig, labels)
    return fig


def _separate(fig: Any, labels: list[Any]) -> None:
    """Move each point label down, a line at a time, until it overlaps no earlier label."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for label in labels:
        for _ in range(len(labels)):
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            x, y = label.xyann
            label.xyann = (x, y - 11)
        placed.append(label.get_window_extent(renderer))


def cost_of_pass_bars(summaries: list[SystemSummary]) -> bytes:
    """Cost-of-pass per system with its bootstrap interval; systems that never pass are marked."""
    return _png(cost_of_pass_figure(summaries))


def cost_of_pass_figure(summaries: list[SystemSummary]):  # noqa: ANN201 - a Figure
    """Bars for finite cost-of-pass with their 95% intervals. An interval without an upper end
    is drawn as an arrow to the top of the axes marked with infinity; a system that never
    passes gets no bar (its cost-of-pass is infinite), only a label saying so."""
    fig, ax = _figure()
    names = [s.system for s in summaries]
    finite = [
        v
        for s in summaries
        for v in (s.cost_of_pass, s.cost_of_pass_high)
        if math.isfinite(v) and v > 0
    ]
    top = max(finite) * 1.25 if finite else 1.0
    for i, s in enumerate(summaries):
        if not math.isfinite(s.cost_of_pass):
            ax.text(i, top * 0.04, "no pass\n(infinite)", ha="center", va="bottom", fontsize=8)
            continue
        low = max(s.cost_of_pass - s.cost_of_pass_low, 0)
        if math.isfinite(s.cost_of_pass_high):
            high = max(s.cost_of_pass_high - s.cost_of_pass, 0)
            ax.bar(i, s.cost_of_pass, yerr=[[low], [high]], capsize=6, color="C0")
        else:
            ax.bar(i, s.cost_of_pass, yerr=[[low], [0]], capsize=6, color="C0")
            ax.annotate(
                "",
                xy=(i, top * 0.97),
                xytext=(i, s.cost_of_pass),
                arrowprops={"arrowstyle": "->", "color": "black"},
            )
            ax.text(i + 0.08, top * 0.93, "to \u221e", fontsize=8, va="top")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0, top)
    ax.set_ylabel("$ per correct answer")
    ax.set_title("Cost-of-pass (95% bootstrap CI)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def tokens_per_task(summaries: list[SystemSummary]) -> bytes:
    """Stacked prompt and completion tokens per task for each system."""
    fig, ax = _figure()
    names = [s.system for s in summaries]
    prompt = [s.prompt_tokens_per_attempt for s in summaries]
    completion = [s.completion_tokens_per_attempt for s in summaries]
    ax.bar(names, prompt, label="prompt")
    ax.bar(names, completion, bottom=prompt, label="completion")
    ax.set_ylabel("tokens per task")
    ax.set_title("Tokens per task")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.legend(fontsize=8)
    return _png(fig)


def accuracy_by_category(summaries: list[SystemSummary]) -> bytes:
    """Grouped bars: accuracy per category for each system."""
    categories = sorted({c for s in summaries for c in s.by_category})
    fig, ax = _figure(max(6.4, 1.1 * len(categories) + 2), 4.0)
    width = 0.8 / max(len(summaries), 1)
    for i, s in enumerate(summaries):
        xs = [j + i * width for j in range(len(categories))]
        ax.bar(xs, [s.by_category.get(c, 0.0) for c in categories], width, label=s.system)
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(categories))],
        categories,
        rotation=20,
        ha="right",
        fontsize=8,
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy by category")
    ax.legend(fontsize=8)
    return _png(fig)


EFFICIENCY_PANELS = (  # (title, value of a summary or None, unit scale, axis label)
    ("memory utilization", lambda s: s.memory_utilization, 100.0, "% of capacity"),
    ("compute utilization", lambda s: s.compute_utilization, 100.0, "% of peak FLOP/s"),
    ("TPOT p50", lambda s: s.tpot_p50_s, 1000.0, "ms per token"),
    ("batch throughput", lambda s: s.throughput_tokens_per_s if s.quant else None, 1.0, "tokens/s"),
    ("energy per task", lambda s: s.energy_j_per_attempt, 1.0, "J"),
    ("compression rate", lambda s: s.compression_rate, 1.0, "x (16-bit size / stored)"),
)


def efficiency_axes(summaries: list[SystemSummary]) -> bytes | None:
    """Small multiples of the six EfficientLLM axes, one bar per local system (None when no
    system is local); an axis nobody measured says so instead of drawing zeros."""
    local = [s for s in summaries if s.quant or s.memory_utilization is not None]
    if not local:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(10.5, 5.6))
    names = [s.system for s in local]
    for ax, (title, value, scale, unit) in zip(axes.flat, EFFICIENCY_PANELS, strict=True):
        values = [value(s) for s in local]
        ax.set_title(title, fontsize=9)
        if all(v is None for v in values):
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        heights = [0.0 if v is None else v * scale for v in values]
        ax.bar(range(len(names)), heights, color=[f"C{i % 10}" for i in range(len(names))])
        for i, v in enumerate(values):
            if v is None:
                ax.text(i, 0, "n/m", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=7)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)
