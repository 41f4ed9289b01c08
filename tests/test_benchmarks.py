"""Benchmark loaders, code extraction and scoring through the sandbox."""

import gzip
import json
from pathlib import Path

import pytest

from evals.benchmarks import extract_code, list_benchmarks, load_benchmark
from llm_eff.core import UserError


def test_extract_first_python_block():
    text = "Sure:\n```python\ndef f():\n    return 1\n```\nand\n```python\nx = 2\n```"
    assert extract_code(text) == "def f():\n    return 1"


def test_extract_ignores_fences_inside_code():
    text = '```python\npattern = r"```{lang}"\nprint(pattern)\n```\n'
    assert extract_code(text) == 'pattern = r"```{lang}"\nprint(pattern)'


def test_extract_unterminated_and_bare_code():
    assert extract_code("```python\ndef g():\n    pass\n") == "def g():\n    pass\n"
    assert extract_code("Here you go.\ndef h():\n    return 3\n") == "def h():\n    return 3\n"
    assert extract_code("no code at all") == ""


def test_extract_java_joins_blocks():
    text = "```java\nclass A {}\n```\ntext\n```java\nclass B {}\n```"
    assert extract_code(text, "java") == "class A {}\nclass B {}\n"


def test_ncb_python_packaged():
    bench = load_benchmark("ncb-python")
    assert len(bench.tasks) == 70
    assert {t.metadata["category"] for t in bench.tasks} >= {"Data Science", "Front-End"}
    first = bench.tasks[0]
    assert bench.score(first, bench.reference_output(first)).passed
    wrong = "```python\ndef word_count(path):\n    return {}\n```"
    assert not bench.score(first, wrong).passed


def test_ncb_java_needs_libs(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LLM_EFF_NCB_JAVA_LIBS", raising=False)
    with pytest.raises(UserError, match="java-libs"):
        load_benchmark("ncb-java")


def test_humaneval_reference_passes(humaneval_file: Path):
    bench = load_benchmark(f"humaneval:{humaneval_file}")
    assert [t.id for t in bench.tasks] == ["Toy/0", "Toy/1", "Toy/2"]
    for task in bench.tasks:
        assert bench.score(task, bench.reference_output(task)).passed
    # a bare completion (no fence, body only) is appended to the prompt
    assert bench.score(bench.tasks[0], "    return a + b\n").passed
    assert not bench.score(bench.tasks[0], "    return a - b\n").passed


def test_humaneval_gz(tmp_path: Path, humaneval_file: Path):
    gz = tmp_path / "he.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(humaneval_file.read_text())
    assert len(load_benchmark(f"humaneval:{gz}").tasks) == 3


def test_bad_benchmark_inputs(tmp_path: Path):
    with pytest.raises(UserError, match="unknown benchmark"):
        load_benchmark("nope")
    with pytest.raises(UserError, match="file not found"):
        load_benchmark(f"humaneval:{tmp_path / 'missing.jsonl'}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"task_id": "a", "prompt": "", "entry_point": "f", "test": ""}) + "\n{oops\n"
    )
    with pytest.raises(UserError, match="bad.jsonl:2: malformed JSON"):
        load_benchmark(f"humaneval:{bad}")
    missing = tmp_path / "missing_field.jsonl"
    missing.write_text(json.dumps({"task_id": "a"}) + "\n")
    with pytest.raises(UserError, match="missing field"):
        load_benchmark(f"humaneval:{missing}")
    assert "humaneval" in list_benchmarks()
