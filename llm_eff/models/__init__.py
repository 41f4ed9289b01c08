"""Model references and loading: embedded default, HF dirs, tiny test models, API ids."""

from llm_eff.models.registry import ModelRef, available_models, parse_model

__all__ = ["ModelRef", "available_models", "parse_model"]
