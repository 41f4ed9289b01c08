"""The local ladder and the llama.cpp engine: GGUF files assembled from wheel parts and checked
by sha256 (a changed part is refused), clear lines for models not installed, and a real GGUF
(the embedded SmolLM2) generating through `LlamaCppBackend` under the Backend contract."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from llm_eff.backends import choose_engine, make_backend
from llm_eff.backends.base import GenerationConfig, user_chat
from llm_eff.backends.llamacpp_backend import available
from llm_eff.core.errors import UserError
from llm_eff.models import parse_model
from llm_eff.models.ladder import LADDER, assemble, gguf_target, installed_gguf

NO_ENGINE = "the llama.cpp engine (xllamacpp, extra llamacpp) is not installed"


def _wheels(tmp_path: Path, parts: list[bytes], package: str = "fake_model") -> list[Path]:
    """Wheels laid out like the ladder's part packages: PKG_partN/data/partNN.bin + code."""
    out = []
    for i, data in enumerate(parts, start=1):
        wheel = tmp_path / f"{package}_part{i}-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(f"{package}_part{i}/__init__.py", "raise SystemExit('never run')\n")
            z.writestr(f"{package}_part{i}/data/part{i:02d}.bin", data)
        out.append(wheel)
    return out[::-1]  # order on disk must not matter


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLM_EFF_CACHE", str(tmp_path / "cache"))
    parts = [b"GGUF" + bytes(range(256)) * 40, b"second part", b"the end"]
    model = replace(
        LADDER["qwen2.5-coder-0.5b"],
        parts=3,
        sha256=hashlib.sha256(b"".join(parts)).hexdigest(),
    )
    monkeypatch.setitem(LADDER, model.name, model)
    return model, parts


def test_parts_are_assembled_in_order_and_verified(fake, tmp_path: Path) -> None:
    model, parts = fake
    path = assemble(model, _wheels(tmp_path, parts))
    assert path == gguf_target(model) and path.read_bytes() == b"".join(parts)
    assert installed_gguf(model.name) == path
    assert parse_model(model.name).path == str(path)
    path.write_bytes(b"".join(parts) + b"x")  # changed after install: refused at load
    with pytest.raises(UserError, match="does not match the sha256"):
        installed_gguf(model.name)


def test_a_changed_part_is_refused_and_leaves_nothing(fake, tmp_path: Path) -> None:
    model, parts = fake
    tampered = [parts[0], b"second part, changed", parts[2]]
    with pytest.raises(UserError, match="sha256 .* expected .*refused"):
        assemble(model, _wheels(tmp_path, tampered))
    target = gguf_target(model)
    assert not target.exists() and list(target.parent.iterdir()) == []
    with pytest.raises(UserError, match="expected parts 1..3"):
        assemble(model, _wheels(tmp_path, parts[:2]))


def test_missing_ladder_models_name_their_install_step(fake) -> None:
    with pytest.raises(UserError, match="not installed: run `llm-eff models install"):
        parse_model("qwen2.5-coder-1.5b")
    with pytest.raises(UserError, match="no GGUF file"):
        parse_model("gguf:/nowhere/model.gguf")
    listing = subprocess.run(
        [sys.executable, "-m", "llm_eff.cli", "models"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert listing.returncode == 0, listing.stderr
    for name in LADDER:
        line = next(row for row in listing.stdout.splitlines() if name in row)
        assert f"llm-eff models install {name}" in line
    failed = subprocess.run(
        [sys.executable, "-m", "llm_eff.cli", "models", "install", "no-such-model"],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 2 and "unknown ladder model" in failed.stderr
    assert "Traceback" not in failed.stderr


@pytest.mark.skipif(not available(), reason=NO_ENGINE)
def test_llamacpp_backend_follows_the_backend_contract() -> None:
    ref = parse_model("smollm2-135m")  # the embedded model is a GGUF file
    assert choose_engine(ref) == "llamacpp" and choose_engine(ref, "transformers") == "transformers"
    backend = make_backend(ref, batch_size=2)
    assert type(backend).__name__ == "LlamaCppBackend" and 130e6 < backend.n_params < 140e6
    one = user_chat("Write a Python function add(a, b).")
    turns = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one?"},
    ]
    greedy = backend.generate([one, turns], GenerationConfig(max_new_tokens=12, n=2))
    assert [len(group) for group in greedy] == [2, 2]
    for group in greedy:
        assert group[0].text and group[0].text == group[1].text
        assert group[0] is not group[1] and group[0].usage is not group[1].usage
        assert 0 < group[0].usage.completion_tokens <= 12 and group[0].cost.dollars > 0
        usage = group[0].usage  # llama.cpp's own timings, per answer
        assert 0 < usage.ttft_s < usage.latency_s and usage.batch_tokens_per_s > 0
        assert usage.tpot_s is None or 0 < usage.tpot_s < usage.latency_s
        # EfficientLLM's axes: the file's own quantization and its size against 16 bits
        assert usage.quant == "gguf-Q4_1" and 2.5 < usage.compression_rate < 4.0
        assert 0 < usage.memory_utilization < 1 and 0 < usage.compute_utilization < 1
    assert greedy[1][0].usage.prompt_tokens > 20  # every turn reached the model's template
    alone = backend.generate([one], GenerationConfig(max_new_tokens=12))[0][0]
    assert alone.text == greedy[0][0].text  # batching does not change the answer
    stopped = backend.generate([one], GenerationConfig(max_new_tokens=12, stop=("def",)))[0][0]
    assert "def" not in stopped.text and greedy[0][0].text.startswith(stopped.text)
    sampled = backend.generate(
        [one], GenerationConfig(max_new_tokens=12, n=3, temperature=1.0, seed=1)
    )[0]
    assert len(sampled) == 3 and len({c.text for c in sampled}) > 1
    assert all(c.usage.completion_tokens > 0 for c in sampled)
    with pytest.raises(TypeError, match="user_chat"):
        backend.generate(["a bare string"], GenerationConfig(max_new_tokens=2))


@pytest.mark.skipif(not available(), reason=NO_ENGINE)
def test_llamacpp_serves_in_a_child_that_dies_with_its_parent(tmp_path: Path) -> None:
    """The server is a process of its own (its memory is counted in the answer's peak), a file
    that is not a GGUF is one clear error, and a parent killed by SIGKILL leaves no server."""
    from llm_eff.backends.llamacpp_backend import LlamaCppBackend

    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(UserError, match="llama.cpp could not load"):
        LlamaCppBackend(bad, batch_size=1)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from llm_eff.backends import make_backend\n"
            "from llm_eff.models import parse_model\n"
            "b = make_backend(parse_model('smollm2-135m'), batch_size=1)\n"
            "print(b.server.process.pid, b.server.peak_rss_bytes(), flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child, rss = (int(x) for x in parent.stdout.readline().split())
        assert child != parent.pid and rss > 50 * 2**20  # the model's weights live there
        assert Path(f"/proc/{child}").exists()
    finally:
        parent.kill()
        parent.wait()
    gone = False
    for _ in range(100):  # its stdin closed with the parent: it exits on its own
        status = Path(f"/proc/{child}/status")
        gone = not status.exists() or "State:\tZ" in status.read_text()
        if gone:
            break
        time.sleep(0.05)
    assert gone
