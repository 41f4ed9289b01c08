"""Ladder Side-Tuning (Sung et al., 2022): see `llm_eff.peft.ladder`."""

from typing import Any

from llm_eff.peft.methods import Method


def _prepare(model: Any, config: Any) -> Any:
    from llm_eff.peft.ladder import LadderSideModel

    return LadderSideModel(model, config)


def _load(model: Any, adapter_dir: Any) -> Any:
    from llm_eff.peft.ladder import LadderSideModel

    return LadderSideModel.from_pretrained(model, adapter_dir)


METHOD = Method(
    "lst",
    "a pruned side network on gated ladders; no backward through the backbone",
    3e-3,
    _prepare,
    _load,
    aliases=("ladder",),
)
