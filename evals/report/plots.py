"""Report plots (matplotlib, Agg): each returns PNG bytes."""

from __future__ import annotations

import io
import math

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
    fig, ax = _figure()
    points = [(s.dollars_per_attempt, s.accuracy, s.system) for s in summaries]
    for cost, acc, name in points:
        ax.scatter([cost], [acc], s=60, zorder=3)
        ax.annotate(name, (cost, acc), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = pareto_front(points)
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="grey", label="frontier")
        ax.legend(fontsize=8)
    ax.set_xlabel("$ per task (mean)")
    ax.set_ylabel("accuracy (pass@1)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy vs cost")
    return _png(fig)


def cost_of_pass_bars(summaries: list[SystemSummary]) -> bytes:
    """Cost-of-pass per system with its bootstrap interval; systems that never pass are marked."""
    fig, ax = _figure()
    names = [s.system for s in summaries]
    finite = [s.cost_of_pass for s in summaries if math.isfinite(s.cost_of_pass)]
    top = max(finite) * 1.3 if finite else 1.0
    for i, s in enumerate(summaries):
        if math.isfinite(s.cost_of_pass):
            low = s.cost_of_pass - s.cost_of_pass_low
            high = (
                s.cost_of_pass_high if math.isfinite(s.cost_of_pass_high) else top
            ) - s.cost_of_pass
            ax.bar(i, s.cost_of_pass, yerr=[[max(low, 0)], [max(high, 0)]], capsize=6, color="C0")
        else:
            ax.bar(i, top, color="lightgrey", hatch="//")
            ax.text(i, top * 0.5, "no pass", ha="center", rotation=90, fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("$ per correct answer")
    ax.set_title("Cost-of-pass (95% bootstrap CI)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


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
