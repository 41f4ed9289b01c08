"""Prices: the one place where a call's dollars are computed.

- API models: LiteLLM's bundled cost map (read offline: `LITELLM_LOCAL_MODEL_COST_MAP` is set so
  nothing is fetched), dollars per input and output token.
- Local models: a hardware price in $/hour turned into $/1M tokens with the measured throughput:

      $ per 1M tokens = hardware $/hour / (3600 * measured tokens/s) * 1,000,000

  where measured tokens/s counts prompt + completion tokens over the wall time of the batch that
  produced them. The default hardware price (`DEFAULT_HARDWARE_DOLLARS_PER_HOUR`) is that of a
  small 2-vCPU cloud VM; pass your own with `--hardware-price`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from llm_eff.core.types import Cost, Usage

DEFAULT_HARDWARE_DOLLARS_PER_HOUR = 0.10
PRICING_NOTE = """\
API models: the provider's reported token usage, priced with LiteLLM's bundled cost map
(source "litellm" or "litellm-cost-map").

Local models (source "local@$X/h"): hardware time. With X the hardware price in $/hour and
the throughput measured on each generation batch (prompt + completion tokens over the batch's
wall time):

    $ per 1M tokens = X / (3600 * measured tokens/s) * 1,000,000

so an attempt costs its tokens at that rate. The default X is $0.10/hour (a small 2-vCPU
cloud VM); pass your own with `llm-eff eval --hardware-price`. This rate follows whatever else
the machine is doing.

Calibrated local models (source "calibrated@$X/h"): `llm-eff calibrate MODEL` measured the
model's prefill and decode rates once on this machine, engine and batch size (best of a few
quiet runs); an attempt then costs

    prompt tokens * X / (3600 * prefill tokens/s) + completion tokens * X / (3600 * decode tokens/s)

which depends on its tokens only, so reruns on a loaded or an idle machine cost the same.

Reference solutions (source "reference") cost nothing. Cost-of-pass = mean $ per attempt /
success rate (infinite when nothing passed); its interval is a 95% percentile bootstrap over
tasks."""


@dataclass(frozen=True)
class Price:
    """Dollars per one million prompt and completion tokens, and where they came from."""

    prompt_per_m: float
    completion_per_m: float
    source: str

    def cost(self, usage: Usage) -> Cost:
        """Dollars for one call's usage (cached prompt tokens are billed as prompt tokens)."""
        dollars = (
            usage.prompt_tokens * self.prompt_per_m
            + usage.completion_tokens * self.completion_per_m
        ) / 1e6
        return Cost(dollars=dollars, source=self.source)


def local_price(hardware_dollars_per_hour: float, tokens_per_s: float) -> Price:
    """$/1M tokens for a local model from hardware $/hour and measured tokens/s (see module)."""
    if tokens_per_s <= 0:
        return Price(0.0, 0.0, f"local@${hardware_dollars_per_hour:g}/h")
    per_m = hardware_dollars_per_hour / (3600 * tokens_per_s) * 1e6
    return Price(per_m, per_m, f"local@${hardware_dollars_per_hour:g}/h")


def load_litellm() -> Any:
    """LiteLLM, set to read its bundled cost map offline and to keep quiet (the one place)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def _model_info(model: str) -> dict | None:
    litellm = load_litellm()
    info = litellm.model_cost.get(model)
    if info is None and "/" in model:
        info = litellm.model_cost.get(model.split("/", 1)[1])
    return info or None


def api_max_output_tokens(model: str) -> int | None:
    """An API model's largest output in tokens, from LiteLLM's model info, if it lists one."""
    info = _model_info(model) or {}
    value = info.get("max_output_tokens") or info.get("max_tokens")
    return int(value) if isinstance(value, int | float) and value > 0 else None


def api_price(model: str) -> Price | None:
    """Price of an API model from LiteLLM's cost map, or None if the map does not list it."""
    info = _model_info(model)
    if not info:
        return None
    return Price(
        prompt_per_m=float(info.get("input_cost_per_token") or 0.0) * 1e6,
        completion_per_m=float(info.get("output_cost_per_token") or 0.0) * 1e6,
        source="litellm-cost-map",
    )
