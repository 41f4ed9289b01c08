"""Training data for `llm-eff finetune`: load, check and tokenise prompt/completion examples.

Accepted: a local JSONL/JSON, CSV or Parquet file, or a directory saved by
`datasets.Dataset.save_to_disk` or holding such files, with either `prompt` + `completion`
columns or a chat `messages` column (the last assistant turn is the completion). Prompts go
through the tokenizer's chat template when it has one, so training matches chat-style use;
loss is taken on completion tokens only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.core.jsonl import read_jsonl

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Example:
    """One training pair: the prompt (chat messages before the answer) and the answer."""

    messages: tuple[tuple[str, str], ...]
    completion: str


def _dataset(path: Path) -> Any:
    import datasets

    datasets.disable_progress_bars()
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            return loaded["train"] if isinstance(loaded, datasets.DatasetDict) else loaded
        files = [f for f in sorted(path.iterdir()) if f.suffix in FORMATS]
        if not files:
            raise UserError(f"{path}: no .jsonl, .json, .csv or .parquet files in the directory")
        kinds = {FORMATS[f.suffix] for f in files}
        if len(kinds) > 1:
            raise UserError(f"{path}: mixed file formats {sorted(kinds)}; use one")
        for f in files:
            if f.suffix == ".jsonl":
                read_jsonl(f)  # names the bad line or the empty file, as datasets does not
        return datasets.load_dataset(kinds.pop(), data_files=[str(f) for f in files], split="train")
    if path.suffix not in FORMATS:
        raise UserError(f"{path}: unsupported data format (use .jsonl, .json, .csv, .parquet)")
    if path.suffix == ".jsonl":
        read_jsonl(path)  # names the bad line or the empty file, as datasets does not
    elif path.stat().st_size == 0:
        raise UserError(f"{path}: no records (the file is empty)")
    return datasets.load_dataset(FORMATS[path.suffix], data_files=str(path), split="train")


def _from_messages(messages: Any, where: str) -> Example:
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: 'messages' must be a non-empty list of chat messages")
    turns = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise UserError(f"{where}: each message needs 'role' and 'content'")
        turns.append((str(m["role"]), str(m["content"])))
    if turns[-1][0] != "assistant":
        raise UserError(f"{where}: the last message must be the assistant's answer")
    return Example(tuple(turns[:-1]), turns[-1][1])


def load_examples(path: str | Path) -> list[Example]:
    """Examples from a data file or directory; UserError naming what is wrong."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"data not found: {path}")
    try:
        data = _dataset(path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds on malformed files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot read data ({first})") from None
    columns = set(data.column_names)
    if {"prompt", "completion"} <= columns:
        examples = [
            Example((("user", str(row["prompt"])),), str(row["completion"])) for row in data
        ]
    elif "messages" in columns:
        examples = [
            _from_messages(row["messages"], f"{path} row {i + 1}") for i, row in enumerate(data)
        ]
    else:
        raise UserError(
            f"{path}: needs 'prompt' and 'completion' columns or a 'messages' column; "
            f"found {', '.join(sorted(columns)) or 'none'}"
        )
    if not examples:
        raise UserError(f"{path}: no examples")
    return examples


def prompt_text(tokenizer: Any, messages: tuple[tuple[str, str], ...]) -> str:
    """The prompt as the model sees it (its chat template, or plain text without one)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": r, "content": c} for r, c in messages],
            add_generation_prompt=True,
            tokenize=False,
        )
    return "\n".join(c for _, c in messages) + "\n"


def tokenize(tokenizer: Any, example: Example, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with the prompt masked out (-100) and EOS after the completion;
    over `max_length`, the prompt loses its start so that the answer is always trained on."""
    prompt = tokenizer(prompt_text(tokenizer, example.messages), add_special_tokens=False)
    answer = tokenizer(example.completion, add_special_tokens=False)
    p_ids, a_ids = list(prompt["input_ids"]), list(answer["input_ids"])
    if tokenizer.eos_token_id is not None:
        a_ids.append(tokenizer.eos_token_id)
    a_ids = a_ids[:max_length]
    if len(p_ids) + len(a_ids) > max_length:  # keep the answer; drop the prompt's start
        p_ids = p_ids[len(p_ids) + len(a_ids) - max_length :]
    return p_ids + a_ids, [-100] * len(p_ids) + a_ids


def batches(
    rows: list[tuple[list[int], list[int]]],
    batch_size: int,
    pad_id: int,
    steps: int,
    seed: int = 0,
    pack_to: int | None = None,
) -> Any:
    """`steps` batches of dicts (input_ids, attention_mask, labels), shuffled, repeating the
    data as needed; with `pack_to`, examples are concatenated into rows of exactly that length.
    """
    import torch

    if pack_to:
        stream_ids: list[int] = []
        stream_labels: list[int] = []
        pack_order = list(range(len(rows)))
        random.Random(seed).shuffle(pack_order)
        while len(stream_ids) < pack_to * batch_size * min(steps, 4):
            for i in pack_order:
                stream_ids += rows[i][0]
                stream_labels += rows[i][1]
        rows = [
            (stream_ids[k : k + pack_to], stream_labels[k : k + pack_to])
            for k in range(0, len(stream_ids) - pack_to + 1, pack_to)
        ]
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(steps):
        batch = []
        for _ in range(batch_size):
            if not order:
                order = list(range(len(rows)))
                rng.shuffle(order)
            batch.append(rows[order.pop()])
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, labs) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(labs)] = torch.tensor(labs)
            mask[i, : len(ids)] = 1
        yield {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
