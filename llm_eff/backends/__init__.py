"""Backends behind one protocol: local transformers, LiteLLM (any API), vLLM (optional)."""

from __future__ import annotations

from llm_eff.backends.base import Backend, Completion, GenerationConfig
from llm_eff.core.errors import UserError
from llm_eff.core.prices import DEFAULT_HARDWARE_DOLLARS_PER_HOUR
from llm_eff.models.registry import ModelRef, model_kinds


def make_backend(
    ref: ModelRef,
    batch_size: int = 8,
    hardware_dollars_per_hour: float = DEFAULT_HARDWARE_DOLLARS_PER_HOUR,
    api_base: str | None = None,
    engine: str = "transformers",
) -> Backend:
    """The backend for a model reference: LiteLLM for API ids, else transformers or vLLM."""
    if ref.kind == "api":
        from llm_eff.backends.litellm_backend import LiteLLMBackend

        return LiteLLMBackend(ref.name, api_base=api_base)
    if engine == "vllm":
        from llm_eff.backends.vllm_backend import VLLMBackend

        kind = model_kinds().get(ref.kind)
        if kind is not None and not kind.vllm:
            raise UserError(f"{ref.kind} systems run on the transformers engine, not vllm")
        path = ref.path
        if ref.kind == "embedded":
            from llm_eff.models.embedded import embedded_model_dir

            path = str(embedded_model_dir())
        return VLLMBackend(path, ref.name, hardware_dollars_per_hour)
    from llm_eff.backends.transformers_backend import TransformersBackend

    return TransformersBackend(ref, batch_size, hardware_dollars_per_hour)


__all__ = ["Backend", "Completion", "GenerationConfig", "make_backend"]
