"""The `llm-eff` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import cli


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_help_explains_commands():
    out = cli("--help")
    assert out.returncode == 0
    for command in ("eval", "report", "models", "benchmarks"):
        assert command in out.stdout
    assert "--limit" in cli("eval", "--help").stdout


def test_help_speaks_plainly_and_tables_are_whole_off_a_terminal():
    help_text = cli("eval", "--help").stdout
    for shown in ("efficiency", "spider-dev", "smollm2-135m, the embedded model", "INTEGER"):
        assert shown in help_text, shown
    assert (
        "<str>" not in help_text
        and "<list[str]>" not in help_text
        and "<bool>" not in (cli("finetune", "--help").stdout.replace("--help", ""))
    )
    from evals.benchmarks import list_benchmarks

    listed = cli("benchmarks", unset=("COLUMNS",))  # a pipe, as in a log: no 80-column cut
    assert listed.returncode == 0 and "…" not in listed.stdout
    assert all(desc in listed.stdout for desc in list_benchmarks().values())


def test_humaneval_reference_and_tiny_model_end_to_end(tmp_path: Path, humaneval_file: Path):
    run = tmp_path / "run.jsonl"
    out = cli(
        "eval",
        "--bench",
        f"humaneval:{humaneval_file}",
        "--system",
        "reference",
        "--system",
        "tiny-llama:max_tokens=8",
        "--run",
        str(run),
    )
    assert out.returncode == 0, out.stderr
    attempts = _lines(run)
    assert len(attempts) == 6
    reference = [a for a in attempts if a["system"] == "reference"]
    assert all(a["passed"] for a in reference)
    tiny = [a for a in attempts if a["system"] != "reference"]
    assert not any(a["passed"] for a in tiny)
    assert all(a["cost"]["dollars"] > 0 and a["usage"]["completion_tokens"] > 0 for a in tiny)
    assert "100.0%" in out.stdout

    report_dir = tmp_path / "report"
    rep = cli("report", str(run), "--out", str(report_dir))
    assert rep.returncode == 0, rep.stderr
    html = (report_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5  # with the EfficientLLM axes
    assert "reference" in html and "tiny-llama" in html and "Cost-of-pass" in html
    md = (report_dir / "report.md").read_text()
    assert "Frontier cost-of-pass" in md and "local@$0.1/h" in md


def _assert_one_line_error(out, needle: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    text = out.stderr.strip()
    assert needle in text and len(text.splitlines()) == 1, text


def test_bad_input_gives_one_clear_line(tmp_path: Path, humaneval_file: Path):
    run = tmp_path / "run.jsonl"
    _assert_one_line_error(cli("eval", "--bench", "nope", "--run", str(run)), "unknown benchmark")
    _assert_one_line_error(
        cli("eval", "--bench", f"humaneval:{tmp_path / 'absent.jsonl'}", "--run", str(run)),
        "file not found",
    )
    unreadable = tmp_path / "dir.jsonl"
    unreadable.mkdir()
    _assert_one_line_error(
        cli("eval", "--bench", f"humaneval:{unreadable}", "--run", str(run)), "file not found"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(humaneval_file.read_text() + "{not json\n")
    _assert_one_line_error(
        cli("eval", "--bench", f"humaneval:{bad}", "--run", str(run)), "bad.jsonl:4: malformed JSON"
    )
    _assert_one_line_error(
        cli(
            "eval",
            "--bench",
            f"humaneval:{humaneval_file}",
            "--system",
            "gpt-9000",
            "--run",
            str(run),
        ),
        "unknown model 'gpt-9000'",
    )
    keys = tuple(k for k in os.environ if k.endswith("_API_KEY")) + ("OPENAI_API_KEY",)
    no_key = cli(
        "eval",
        "--bench",
        f"humaneval:{humaneval_file}",
        "--system",
        "openai/gpt-4o-mini",
        "--run",
        str(run),
        unset=keys,
    )
    _assert_one_line_error(no_key, "OPENAI_API_KEY")
    _assert_one_line_error(cli("report", str(tmp_path / "none.jsonl")), "run log not found")
    assert not run.exists()  # nothing half-written by any failed command
    assert not list(tmp_path.glob("*report*"))


def test_models_lists_embedded_default():
    out = cli("models")
    assert out.returncode == 0 and "smollm2-135m" in out.stdout
