"""Append-only JSONL run log: one `Attempt` per line, each fsynced as it finishes.

A crash (even SIGKILL) can at worst leave one partial last line; `RunLog.read` skips it and the
next append starts on a fresh line, so rerunning the same command resumes without duplicates.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from llm_eff.core.errors import UserError
from llm_eff.core.types import Attempt


class RunLog:
    """A JSONL file of attempts that survives crashes and supports resume."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def read(self) -> list[Attempt]:
        """All complete attempts in the log (a torn last line from a crash is ignored)."""
        return list(self._iter())

    def _iter(self) -> Iterator[Attempt]:
        if not self.path.exists():
            return
        try:
            lines = self.path.read_text(encoding="utf-8").split("\n")
        except OSError as exc:
            raise UserError(f"cannot read run log {self.path}: {exc.strerror}") from exc
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):
                    continue  # torn final line from an interrupted write
                raise UserError(f"{self.path}:{number}: malformed run-log line") from None
            if record.get("type", "attempt") == "attempt":
                yield Attempt.from_dict(record)

    def done_keys(self) -> set[tuple[str, str, str, int]]:
        """Keys of attempts already recorded (for resume)."""
        return {a.key for a in self._iter()}

    def append(self, attempt: Attempt) -> None:
        """Durably append one attempt (flush + fsync before returning)."""
        line = json.dumps({"type": "attempt", **attempt.to_dict()}, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:
                    _drop_torn_tail(fh)
                fh.write(line.encode("utf-8") + b"\n")
                fh.flush()
                os.fsync(fh.fileno())


def _drop_torn_tail(fh) -> None:  # noqa: ANN001 - a binary file object opened "a+b"
    """Cut a partial last line (an attempt whose write a crash interrupted)."""
    end = fh.seek(0, os.SEEK_END)
    fh.seek(end - 1)
    if fh.read(1) == b"\n":
        return
    pos = end
    while pos > 0:
        step = min(4096, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            fh.truncate(pos + idx + 1)
            return
    fh.truncate(0)
