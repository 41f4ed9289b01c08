"""Atomic file writes: write a temp file beside the target, fsync, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def default_mode(kind: int = 0o666) -> int:
    """The mode a plain `open()` or `mkdir()` would give: `kind` less the process umask."""
    try:  # Linux tells it without changing it (os.umask would, for a moment, in every thread)
        status = Path("/proc/self/status").read_text()
        umask = next(
            int(line.split()[1], 8) for line in status.splitlines() if line[:6] == "Umask:"
        )
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return kind & ~umask


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` to `path` so that readers see the old file or the new one, never half.

    The file gets the mode a plain `open()` would give (an existing file keeps its own), not
    the owner-only mode of the temporary file it is written as.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        file_mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        file_mode = default_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode)
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
