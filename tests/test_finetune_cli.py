"""`llm-eff finetune` as a user runs it: a real subprocess on a tiny model and real files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import cli

ROWS = [
    {"prompt": f"What is {a} plus {b}?", "completion": str(a + b)}
    for a in range(6)
    for b in range(5)
]


@pytest.fixture()
def add_data(tmp_path: Path) -> Path:
    path = tmp_path / "add.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _finetune(data: Path, out: Path, *extra: str, unset: tuple[str, ...] = ()):
    return cli(
        "finetune",
        "--model",
        "tiny-llama",
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--eval-limit",
        "2",
        "--max-new-tokens",
        "4",
        "--table",
        str(out.parent / "table.jsonl"),
        *extra,
        unset=unset,
    )


def test_finetune_trains_saves_reloads_scores_and_adds_a_row(
    add_data: Path, tmp_path: Path
) -> None:
    from llm_eff.models.tiny import tiny_llama
    from llm_eff.peft import load

    for method in ("bit1", "unipt"):
        # no COLUMNS and not a terminal, as in a log: the table is not cut to 80 columns
        result = _finetune(add_data, tmp_path / method, "--method", method, unset=("COLUMNS",))
        assert result.returncode == 0, result.stderr
        assert "reload reproduces the trained logits" in result.stdout
        assert "Warning" not in result.stderr, result.stderr  # no library deprecation noise
        assert "trainable params" in result.stdout and "held-out loss" in result.stdout
        assert "(n=2)" in result.stdout  # the score says how many examples it rests on
        assert (tmp_path / method / "adapter_config.json").is_file()
        load(tiny_llama()[0], tmp_path / method)
    rows = [json.loads(line) for line in (tmp_path / "table.jsonl").read_text().splitlines()]
    assert [r["method"] for r in rows] == ["bit1", "unipt"]
    for r in rows:
        assert r["trainable_params"] > 0 and r["adapter_bytes"] > 0 and r["reload_exact"]
        assert r["n_scored"] == 2 and 0.0 <= r["score"] <= 1.0
    assert rows[0]["adapter_bytes"] < 4000  # packed bits, not floats
    md = (tmp_path / "table.md").read_text()
    assert "| bit1 | tiny-llama |" in md and "| unipt | tiny-llama |" in md


def test_existing_output_is_refused_unless_overwrite(add_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "keep"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    refused = _finetune(add_data, out, "--method", "lst")
    assert refused.returncode == 2
    assert "output directory exists" in refused.stderr and "Traceback" not in refused.stderr
    assert (out / "precious.txt").read_text() == "mine"
    replaced = _finetune(add_data, out, "--method", "lst", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert not (out / "precious.txt").exists() and (out / "adapter_model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keep.")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "vera"), "unknown method 'vera'"),
        (("--method", "lora", "--target-modules", "nonexistent"), "found none of the target"),
        (("--metric", "bleu"), "unknown metric"),
    ],
)
def test_bad_options_give_one_line(add_data: Path, tmp_path: Path, args, message: str) -> None:
    result = _finetune(add_data, tmp_path / "o", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_bad_data_files_give_one_line(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "q", "completion": \n')
    other = tmp_path / "data.txt"
    other.write_text("hello")
    cases = [
        (wrong, "needs 'prompt' and 'completion' columns or a 'messages' column"),
        (broken, "broken.jsonl:1: malformed JSON line"),
        (other, "unsupported data format"),
        (tmp_path / "missing.jsonl", "data not found"),
    ]
    for path, message in cases:
        result = _finetune(path, tmp_path / "o")
        assert result.returncode == 2, (path, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_table_cells_keep_the_loss_digits_and_the_score_count() -> None:
    from llm_eff.peft.table import cell

    assert cell("heldout_loss", 5.0028) == "5.003"
    assert cell("score", 0.5, {"n_scored": 2}) == "50.0% (n=2)"
    assert cell("score", float("nan"), {"n_scored": 0}) == "-"


def test_data_errors_name_the_line_and_the_empty_file(tmp_path: Path) -> None:
    from llm_eff.core.errors import UserError
    from llm_eff.peft.data import load_examples

    good = json.dumps({"prompt": "q", "completion": "a"})
    cases = {
        "empty.jsonl": ("", "empty.jsonl: no records"),
        "blank.jsonl": ("\n\n", "blank.jsonl: no records"),
        "line2.jsonl": (good + '\n{"prompt": "q",\n', "line2.jsonl:2: malformed JSON line"),
        "line3.jsonl": (good + "\n\n[1, 2]\n", "line3.jsonl:3: expected a JSON object"),
        "empty.csv": ("", "empty.csv: no records (the file is empty)"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=re.escape(message)):
            load_examples(tmp_path / name)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.jsonl").write_text(good + "\n")
    (folder / "b.jsonl").write_text(good + "\nnot json\n")
    with pytest.raises(UserError, match=re.escape("b.jsonl:2: malformed JSON line")):
        load_examples(folder)


def test_chat_messages_csv_and_parquet_load(tmp_path: Path) -> None:
    import pandas as pd

    from llm_eff.peft.data import load_examples

    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "4"},
                ]
            }
        )
        + "\n"
    )
    (example,) = load_examples(chat)
    assert example.messages == (("system", "Be brief."), ("user", "2+2?"))
    assert example.completion == "4"
    pd.DataFrame(ROWS).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(ROWS).to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        examples = load_examples(tmp_path / name)
        assert len(examples) == len(ROWS) and examples[0].completion == str(ROWS[0]["completion"])


def test_tokenize_masks_the_prompt() -> None:
    from llm_eff.models.tiny import tiny_tokenizer
    from llm_eff.peft.data import Example, tokenize

    tok = tiny_tokenizer()
    ids, labels = tokenize(tok, Example((("user", "What is 2 plus 2?"),), "4"), 512)
    answer = [i for i, lab in zip(ids, labels, strict=True) if lab != -100]
    assert tok.decode(answer) == "4" + tok.eos_token
    assert labels[0] == -100 and len(ids) == len(labels)


def test_lora_trains_on_a_quantized_base(add_data: Path, tmp_path: Path) -> None:
    """`--model tiny-llama:quant=nf4`: LoRA over bitsandbytes 4-bit layers, on CPU; the saved
    adapter names its quantized base, and reloading it reproduces the trained logits."""
    from llm_eff.peft.api import base_model_of

    out = tmp_path / "nf4"
    result = cli(
        "finetune",
        "--model",
        "tiny-llama:quant=nf4",
        "--data",
        str(add_data),
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--eval-limit",
        "2",
        "--max-new-tokens",
        "4",
        "--method",
        "lora",
        "--table",
        str(tmp_path / "table.jsonl"),
    )
    assert result.returncode == 0, result.stderr
    assert "reload reproduces the trained logits" in result.stdout
    assert base_model_of(str(out)) == "tiny-llama:quant=nf4"
    row = json.loads((tmp_path / "table.jsonl").read_text().splitlines()[-1])
    assert row["model"] == "tiny-llama:quant=nf4"
    from llm_eff.backends import make_backend
    from llm_eff.backends.base import GenerationConfig, user_chat
    from llm_eff.models import parse_model

    backend = make_backend(parse_model(str(out)))  # the adapter, over its 4-bit base
    answer = backend.generate([user_chat("What is 2 plus 3?")], GenerationConfig(4))[0][0]
    assert answer.usage.quant == "nf4" and answer.usage.completion_tokens > 0
