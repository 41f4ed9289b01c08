"""Cost reports rebuilt from a run log: content, plots, and a real browser rendering it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from evals.benchmarks import load_benchmark
from evals.report import write_report
from evals.report.plots import pareto_front
from evals.runner import RunOptions, run_system
from evals.systems import parse_system
from llm_eff.backends.transformers_backend import TransformersBackend
from llm_eff.core import RunLog
from llm_eff.models import parse_model


def test_pareto_front():
    points = [(1.0, 0.5, "a"), (2.0, 0.4, "b"), (3.0, 0.9, "c"), (0.5, 0.1, "d")]
    assert [p[2] for p in pareto_front(points)] == ["d", "a", "c"]


@pytest.fixture()
def run_log(tmp_path: Path, humaneval_file: Path, tiny_model) -> Path:
    bench = load_benchmark(f"humaneval:{humaneval_file}")
    log = RunLog(tmp_path / "run.jsonl")
    model, tok = tiny_model
    backend = TransformersBackend(parse_model("tiny-llama"), model=model, tokenizer=tok)
    run_system(bench, parse_system("reference"), log, RunOptions())
    run_system(
        bench,
        parse_system("tiny-llama:best-of-2,max_tokens=6"),
        log,
        RunOptions(),
        backends={("tiny-llama", None): backend},
    )
    return log.path


def test_report_contents(run_log: Path, tmp_path: Path):
    files = write_report([run_log], tmp_path / "out")
    md = files.markdown.read_text()
    assert "| reference | 3 | 3 | 100.0%" in md
    assert "tiny-llama best-of-2" in md and "∞ (no pass)" in md
    assert "dominated" in md or "trade-off" in md  # TEP row against the first system
    for plot in ("accuracy_vs_cost", "cost_of_pass", "tokens", "categories", "efficiency"):
        (png,) = (tmp_path / "out" / "plots").glob(f"*-{plot}.png")
        assert png.stat().st_size > 1000
    html = files.html.read_text()
    assert "<img" in html and "src='plots/" not in html  # self-contained


def _summary(name: str, cop: float, low: float, high: float, cost: float, acc: float):
    from evals.metrics.summary import SystemSummary

    return SystemSummary(
        name,
        name,
        "b",
        4,
        4,
        acc,
        {},
        cop,
        low,
        high,
        cost,
        cost * 4,
        10.0,
        5.0,
        5.0,
        0.1,
        0.1,
        100.0,
        None,
        0,
    )


def test_plots_mark_infinity_and_keep_labels_inside():
    import math

    from matplotlib.patches import Rectangle

    from evals.report.plots import accuracy_vs_cost_figure, cost_of_pass_figure

    inf = math.inf
    summaries = [
        _summary("closed", 0.002, 0.001, 0.004, 0.001, 0.5),
        _summary("open-ended", 0.0029, 0.002, inf, 0.0029, 0.25),
        _summary("never passes", inf, inf, inf, 0.004, 0.0),
    ]
    fig = cost_of_pass_figure(summaries)
    ax = fig.axes[0]
    bars = [r for r in ax.patches if isinstance(r, Rectangle) and r.get_height() > 0]
    assert sorted(round(b.get_height(), 6) for b in bars) == [0.002, 0.0029]  # no fake bar
    assert ax.get_ylim()[1] > 0.004  # the closed interval's top is inside the axes
    texts = [t.get_text() for t in ax.texts]
    assert "no pass\n(infinite)" in texts and "to \u221e" in texts
    arrows = [c for c in ax.get_children() if type(c).__name__ == "Annotation"]
    assert len(arrows) == 1 and arrows[0].xy[1] > 0.0029  # the open end points up the axes
    fig = accuracy_vs_cost_figure(summaries)
    fig.canvas.draw()
    ax = fig.axes[0]
    box = ax.get_window_extent()
    for label in ax.texts:
        extent = label.get_window_extent()
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, label.get_text()
    assert ax.get_legend() is None or "frontier" in ax.get_legend().texts[0].get_text()
    close = [  # the efficiency report's three ladder systems: long labels, nearby points
        _summary("smollm2-135m greedy", 1e-4, 5e-5, 3e-4, 2.46e-5, 0.25),
        _summary("qwen2.5-coder-1.5b greedy", 1.7e-4, 1.5e-4, 2e-4, 1.56e-4, 0.917),
        _summary("cascade:smollm2-135m>qwen2.5-coder-1.5b", 2.5e-4, 2e-4, 3e-4, 2.17e-4, 0.875),
    ]
    fig = accuracy_vs_cost_figure(close)
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in fig.axes[0].texts]
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    fig = accuracy_vs_cost_figure(summaries[:1])  # one point: no one-point frontier
    assert fig.axes[0].get_legend() is None and not fig.axes[0].lines


def test_report_refuses_a_foreign_folder_and_replaces_an_earlier_report(
    run_log: Path, tmp_path: Path
):
    from llm_eff.core.errors import UserError

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    with pytest.raises(UserError, match="is not an llm-eff report folder"):
        write_report([run_log], adapter)
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_model.safetensors"]
    files = write_report([run_log], tmp_path / "report")
    stale = tmp_path / "report" / "plots" / "gone-bench-tokens.png"
    stale.write_bytes(b"old")
    again = write_report([run_log], tmp_path / "report")  # an earlier report: replaced
    assert again.markdown == files.markdown and not stale.exists()
    write_report([run_log], adapter, overwrite=True)
    assert (adapter / "report.md").is_file() and (adapter / "adapter_model.safetensors").is_file()


def test_written_files_are_readable_by_others(run_log: Path, tmp_path: Path):
    import os
    import stat

    from llm_eff.core.atomic import atomic_write

    old = os.umask(0o022)
    try:
        files = write_report([run_log], tmp_path / "report")
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode)
            for p in (tmp_path / "report").rglob("*")
            if p.is_file()
        }
        assert modes and all(m == 0o644 for m in modes.values()), modes
        target = tmp_path / "kept.txt"
        target.write_text("x")
        target.chmod(0o600)
        atomic_write(target, "secret")  # an existing file keeps its own mode
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert files.html.is_file()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")
def test_report_renders_in_headless_chromium(run_log: Path, tmp_path: Path):
    files = write_report([run_log], tmp_path / "out")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            files.html.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 1000 and pixels[..., :3].std() > 0.05  # a page, not a blank
