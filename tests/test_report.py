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
        bench, parse_system("tiny-llama:best-of-2,max_tokens=6"), log, RunOptions(), backend=backend
    )
    return log.path


def test_report_contents(run_log: Path, tmp_path: Path):
    files = write_report([run_log], tmp_path / "out")
    md = files.markdown.read_text()
    assert "| reference | 3 | 3 | 100.0%" in md
    assert "tiny-llama best-of-2" in md and "∞ (no pass)" in md
    assert "dominated" in md or "trade-off" in md  # TEP row against the first system
    for plot in ("accuracy_vs_cost", "cost_of_pass", "tokens", "categories"):
        (png,) = (tmp_path / "out" / "plots").glob(f"*-{plot}.png")
        assert png.stat().st_size > 1000
    html = files.html.read_text()
    assert "<img" in html and "src='plots/" not in html  # self-contained


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
