"""Layer plans: which decoder layers run, and how often, for one sequence.

A plan holds one action per layer of the base model: `skip` (the layer is left out),
`execute` (run once) or `repeat` (run twice in a row). `apply_plan` runs a Llama-family model
under a plan by giving it, for the duration of a `with` block, a layer list in plan order: the
same layer modules (shared weights), each repeated copy with its own KV-cache slot, so
`generate()` and the KV cache work unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from torch import nn

from llm_eff.core.errors import UserError

ACTIONS = ("skip", "execute", "repeat")
SKIP, EXECUTE, REPEAT = range(3)


def check_plan(plan: Sequence[int], depth: int) -> None:
    """UserError unless `plan` has one valid action index per layer."""
    if len(plan) != depth:
        raise UserError(f"a plan needs one action per layer: got {len(plan)} for {depth} layers")
    bad = [a for a in plan if a not in (SKIP, EXECUTE, REPEAT)]
    if bad:
        raise UserError(f"unknown plan action(s) {bad}: use 0 skip, 1 execute, 2 repeat")


def execution_order(plan: Sequence[int]) -> list[int]:
    """Layer indices in the order they run: skip -> none, execute -> once, repeat -> twice."""
    return [i for i, action in enumerate(plan) for _ in range(action)]


def layers_executed(plan: Sequence[int]) -> int:
    """How many layer applications the plan costs."""
    return sum(plan)


def full_plan(depth: int) -> list[int]:
    """Every layer once (the base model)."""
    return [EXECUTE] * depth


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder-layer list of a Llama-family causal LM; UserError for other layouts."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(layers, nn.ModuleList) or not layers:
        raise UserError(
            f"{type(model).__name__} is not a decoder-only model with model.layers "
            "(Llama family: Llama, SmolLM, Mistral, Qwen2)"
        )
    return layers


def _slot_copy(layer: nn.Module, slot: int) -> nn.Module:
    """`layer` sharing its weights but using KV-cache slot `slot`."""
    view = copy.copy(layer)
    view._modules = dict(layer._modules)
    attention = copy.copy(layer.self_attn)
    attention.layer_idx = slot
    view._modules["self_attn"] = attention
    return view


@contextmanager
def apply_plan(model: nn.Module, plan: Sequence[int]) -> Iterator[nn.Module]:
    """Run `model` under `plan` inside the block (restored afterwards, even on error)."""
    layers = decoder_layers(model)
    check_plan(plan, len(layers))
    order = execution_order(plan)
    if not order:
        raise UserError("a plan must run at least one layer")
    inner: Any = model.model
    config = model.config
    saved_depth = config.num_hidden_layers
    # per-layer attention kinds (Qwen2, Mistral: full or sliding) follow their layers
    saved_types = getattr(config, "layer_types", None)
    inner.layers = nn.ModuleList(_slot_copy(layers[i], slot) for slot, i in enumerate(order))
    config.num_hidden_layers = len(order)
    if saved_types is not None:
        config.layer_types = [saved_types[i] for i in order]
    try:
        yield model
    finally:
        inner.layers = layers
        config.num_hidden_layers = saved_depth
        if saved_types is not None:
            config.layer_types = saved_types
