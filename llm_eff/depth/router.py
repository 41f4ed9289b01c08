"""Dr.LLM: a small router per layer picks skip, execute or repeat for each sequence.

Each router is a bottleneck MLP (hidden -> 128 -> 3, GELU) applied to the mean-pooled hidden
states of 8 contiguous windows of the sequence entering its layer; the 8 windows' logits are
averaged. Routing happens once, at prefill, layer by layer (a router sees the hidden states the
plan so far produced); generation then runs the chosen plan with the KV cache
(`plans.apply_plan`). The base model is frozen: only the routers have parameters to train.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_eff.core.errors import UserError
from llm_eff.depth.plans import ACTIONS, EXECUTE, REPEAT, SKIP, apply_plan, decoder_layers

CONFIG_FILE = "drllm.json"
WEIGHTS_FILE = "routers.safetensors"


def window_pool(hidden: torch.Tensor, mask: torch.Tensor, windows: int) -> torch.Tensor:
    """(B, windows, H): mean hidden state of `windows` contiguous chunks of each row's tokens.

    Rows with fewer tokens than windows repeat their chunks, so every window is defined.
    """
    pooled = []
    for row, row_mask in zip(hidden, mask, strict=True):
        tokens = row[row_mask.bool()]
        if len(tokens) == 0:
            tokens = row[-1:]
        chunks = torch.tensor_split(tokens, min(windows, len(tokens)))
        means = torch.stack([c.mean(dim=0) for c in chunks])
        pooled.append(means[torch.arange(windows) % len(means)])
    return torch.stack(pooled)


class LayerRouter(nn.Module):
    """hidden -> bottleneck -> 3 (skip, execute, repeat), averaged over the windows."""

    def __init__(self, hidden: int, bottleneck: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(hidden, bottleneck), nn.GELU(), nn.Linear(bottleneck, len(ACTIONS))
        )
        nn.init.zeros_(self.net[2].weight)
        with torch.no_grad():  # start as the base model: execute every layer
            self.net[2].bias.copy_(torch.tensor([0.0, 2.0, 0.0]))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits (B, 3) from window-pooled states (B, W, H)."""
        return self.net(pooled.float()).mean(dim=1)


class DrLLM(nn.Module):
    """A frozen decoder-only model with one router per layer (module docstring)."""

    def __init__(
        self, base: nn.Module, base_model: str = "", bottleneck: int = 128, windows: int = 8
    ) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.base_model, self.windows, self.bottleneck = base_model, windows, bottleneck
        self.depth = len(decoder_layers(base))
        hidden = base.config.hidden_size
        self.routers = nn.ModuleList(LayerRouter(hidden, bottleneck) for _ in range(self.depth))
        self.last_plans: list[list[int]] = []  # the plan of each output row of the last generate

    def _layer_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """(hidden, call) where call(i, h) runs layer i on h with the right mask/positions."""
        from transformers.masking_utils import create_causal_mask

        inner: Any = self.base.model
        hidden = inner.embed_tokens(input_ids)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        rotary = inner.rotary_emb(hidden, position_ids=positions)
        causal = create_causal_mask(
            config=self.base.config,
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            cache=None,
            position_ids=positions,
        )
        layers = decoder_layers(self.base)

        def call(i: int, h: torch.Tensor) -> torch.Tensor:
            out = layers[i](
                h, attention_mask=causal, position_embeddings=rotary, position_ids=positions
            )
            return out[0] if isinstance(out, tuple) else out

        return hidden, call

    @torch.no_grad()
    def walk(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        plans: Sequence[Sequence[int]] | None = None,
    ) -> tuple[list[list[int]], list[torch.Tensor], torch.Tensor]:
        """Prefill layer by layer: the routers choose (or `plans` dictate) each layer's action.

        Returns the plans, per layer the window-pooled states its router saw (B, W, H), and
        the logits at the last layer (B, T, V).
        """
        hidden, call = self._layer_inputs(input_ids, attention_mask)
        chosen: list[list[int]] = [[] for _ in range(len(input_ids))]
        features = []
        for i in range(self.depth):
            pooled = window_pool(hidden, attention_mask, self.windows)
            features.append(pooled)
            if plans is None:
                actions = self.routers[i](pooled).argmax(dim=-1).tolist()
            else:
                actions = [int(p[i]) for p in plans]
            once = call(i, hidden) if any(a != SKIP for a in actions) else hidden
            twice = call(i, once) if REPEAT in actions else once
            pick = torch.tensor(actions).view(-1, 1, 1)
            hidden = torch.where(pick == SKIP, hidden, torch.where(pick == EXECUTE, once, twice))
            for row, action in zip(chosen, actions, strict=True):
                row.append(action)
        logits = self.base.lm_head(self.base.model.norm(hidden))
        return chosen, features, logits

    def route(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[list[int]]:
        """The routers' plan for each sequence."""
        return self.walk(input_ids, attention_mask)[0]

    @torch.no_grad()
    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """Like `generate()` of a causal LM (prompt + new tokens, right-padded), each sequence
        under its routed plan; `depth_per_row` then reports the layers each row ran."""
        pad = kwargs.get("pad_token_id") or 0
        n = int(kwargs.get("num_return_sequences", 1))
        news, plans = generate_routed(self, input_ids, attention_mask, **kwargs)
        self.last_plans = [plan for plan in plans for _ in range(n)]  # one per output row
        width = max((len(x) for x in news), default=0)
        out = torch.full((len(input_ids) * n, input_ids.shape[1] + width), pad, dtype=torch.long)
        for i, new in enumerate(news):  # news: n rows per prompt, in prompt order
            out[i, : input_ids.shape[1]] = input_ids[i // n]
            out[i, input_ids.shape[1] : input_ids.shape[1] + len(new)] = new
        return out

    def depth_per_row(self) -> list[tuple[float, float]]:
        """(layer executions, share of full depth) per output row of the last `generate`."""
        return [(float(sum(p)), sum(p) / len(p)) for p in self.last_plans]

    def save(self, out: str | Path) -> None:
        """Write the routers and their config (base model, depth, sizes) to `out`."""
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.routers.state_dict().items()},
            str(out / WEIGHTS_FILE),
        )
        config = {
            "base_model": self.base_model,
            "model_type": self.base.config.model_type,
            "depth": self.depth,
            "hidden_size": self.base.config.hidden_size,
            "bottleneck": self.bottleneck,
            "windows": self.windows,
        }
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def read_config(directory: str | Path) -> dict[str, Any]:
    """The saved routers' config; UserError if `directory` holds none."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{directory}: no {CONFIG_FILE} (not a Dr.LLM routers directory)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg})") from None


def load_drllm(directory: str | Path, base: nn.Module | None = None) -> DrLLM:
    """Routers from `directory` over `base` (default: load the base model they record).

    UserError when the base model's architecture, depth or width differ from the routers'.
    """
    from safetensors.torch import load_file

    config = read_config(directory)
    if base is None:
        from llm_eff.backends.transformers_backend import load_local
        from llm_eff.models import parse_model

        base = load_local(parse_model(config["base_model"]))[0]
    found = (base.config.model_type, len(decoder_layers(base)), base.config.hidden_size)
    wanted = (config["model_type"], config["depth"], config["hidden_size"])
    if found != wanted:
        raise UserError(
            f"routers in {directory} are for a {wanted[0]} model with {wanted[1]} layers of width "
            f"{wanted[2]}; this model is {found[0]} with {found[1]} layers of width {found[2]}"
        )
    model = DrLLM(base, config["base_model"], config["bottleneck"], config["windows"])
    model.routers.load_state_dict(load_file(str(Path(directory) / WEIGHTS_FILE)))
    return model


@torch.no_grad()
def generate_routed(
    model: DrLLM, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Route each sequence at prefill, then generate under its plan (KV cache on).

    Returns the new tokens of every returned sequence (prompt order; `num_return_sequences`
    per prompt) and the plan of each prompt.
    """
    plans = model.route(input_ids, attention_mask)
    outputs = []
    for row, plan in enumerate(plans):
        ids = input_ids[row : row + 1]
        mask = attention_mask[row : row + 1]
        with apply_plan(model.base, plan):
            out = model.base.generate(input_ids=ids, attention_mask=mask, **kwargs)
        outputs.extend(out[k, ids.shape[1] :] for k in range(len(out)))
    return outputs, plans
