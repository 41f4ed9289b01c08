"""Read a JSONL file (optionally gzipped) with one clear error per bad line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from llm_eff.core.errors import UserError


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """Records of a .jsonl or .jsonl.gz file; UserError naming the file and line on bad input."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    records = []
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{path}:{number}: malformed JSON line ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise UserError(f"{path}:{number}: expected a JSON object")
                missing = [k for k in required if k not in record]
                if missing:
                    raise UserError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
                records.append(record)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if not records:
        raise UserError(f"{path}: no records")
    return records
