"""Mixture-of-Recursions models (Bae et al., 2025), registered with the transformers Auto classes.

Importing this package makes `AutoConfig` / `AutoModelForCausalLM` load saved MoR models
(`model_type: "mor"`).
"""

from transformers import AutoConfig, AutoModelForCausalLM

from llm_eff.mor.cache import MoRCache
from llm_eff.mor.config import MoRConfig
from llm_eff.mor.modeling import MoRForCausalLM

AutoConfig.register("mor", MoRConfig, exist_ok=True)
AutoModelForCausalLM.register(MoRConfig, MoRForCausalLM, exist_ok=True)

__all__ = ["MoRCache", "MoRConfig", "MoRForCausalLM"]
