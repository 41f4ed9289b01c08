"""Backends behind one protocol: transformers, llama.cpp (GGUF, CPU), LiteLLM (any API), vLLM."""

from __future__ import annotations

from pathlib import Path

from llm_eff.backends.base import Backend, Chat, Completion, GenerationConfig, user_chat
from llm_eff.backends.calibration import find_calibration
from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
from llm_eff.models.registry import ModelRef, model_kinds

ENGINES = ("auto", "transformers", "llamacpp", "vllm")


def gguf_file(ref: ModelRef) -> Path | None:
    """The GGUF file a model reference runs from, if it is one (embedded, ladder, gguf:FILE)."""
    if ref.kind == "gguf":
        return Path(ref.path)
    if ref.kind == "embedded":
        from llm_eff.models.embedded import gguf_path

        return gguf_path()
    return None


def check_engine(engine: str) -> str:
    """`engine` if it is one of ENGINES; UserError naming them otherwise."""
    if engine not in ENGINES:
        raise UserError(f"unknown engine '{engine}' (one of {', '.join(ENGINES)})")
    return engine


def choose_engine(ref: ModelRef, engine: str = "auto") -> str:
    """The engine a local model runs on: `auto` picks llama.cpp for GGUF models when it is
    installed (its decode was the faster at batch 1 and 8 for every ladder model in
    benchmarks/engine_speed.py) and transformers otherwise, and for a `quant=` option, which
    the transformers engine applies (llama.cpp and vLLM refuse it: a GGUF file carries its own
    quantization level)."""
    if ref.quant and check_engine(engine) not in ("auto", "transformers"):
        raise UserError(
            f"quant={ref.quant} runs on the transformers engine, not {engine}: drop --engine, "
            "or for llama.cpp use a GGUF file quantized to the level wanted"
        )
    if check_engine(engine) != "auto":
        return engine
    if ref.quant:
        return "transformers"
    from llm_eff.backends.llamacpp_backend import available

    return "llamacpp" if gguf_file(ref) is not None and available() else "transformers"


def make_backend(
    ref: ModelRef,
    batch_size: int = 8,
    hardware_dollars_per_hour: float = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
    api_base: str | None = None,
    engine: str = "auto",
) -> Backend:
    """The backend for a model reference: LiteLLM for API ids, else the local `engine`."""
    if ref.kind == "api":
        from llm_eff.backends.litellm_backend import LiteLLMBackend

        return LiteLLMBackend(ref.name, api_base=api_base)
    engine = choose_engine(ref, engine)
    if engine == "llamacpp":
        from llm_eff.backends.llamacpp_backend import LlamaCppBackend

        gguf = gguf_file(ref)
        if gguf is None:
            raise UserError(
                f"{ref.name} is not a GGUF model: the llamacpp engine runs smollm2-135m, the "
                "ladder models and gguf:FILE; use --engine transformers"
            )
        return LlamaCppBackend(
            gguf,
            ref.name,
            batch_size,
            hardware_dollars_per_hour,
            calibration=find_calibration(ref.name, engine, batch_size),
        )
    if engine == "vllm":
        from llm_eff.backends.vllm_backend import VLLMBackend

        kind = model_kinds().get(ref.kind)
        if kind is not None and not kind.vllm:
            raise UserError(f"{ref.kind} systems run on the transformers engine, not vllm")
        path = ref.path
        if ref.kind == "embedded":
            from llm_eff.models.embedded import embedded_model_dir

            path = str(embedded_model_dir())
        return VLLMBackend(
            path,
            ref.name,
            hardware_dollars_per_hour,
            calibration=find_calibration(ref.name, engine, batch_size),
        )
    from llm_eff.backends.transformers_backend import TransformersBackend

    return TransformersBackend(
        ref,
        batch_size,
        hardware_dollars_per_hour,
        calibration=find_calibration(ref.name, engine, batch_size),
    )


__all__ = [
    "ENGINES",
    "Backend",
    "Chat",
    "Completion",
    "GenerationConfig",
    "check_engine",
    "choose_engine",
    "make_backend",
    "user_chat",
]
