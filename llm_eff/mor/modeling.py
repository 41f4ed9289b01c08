"""`MoRForCausalLM`: a Llama-style decoder whose middle layers are one block applied recursively,
with a router choosing per token how many recursions it takes (Mixture-of-Recursions).

Forward pass: embeddings -> unshared first layers -> the shared block, once per recursion, run
only on the tokens still active (gathered into a packed batch, so skipped tokens cost nothing)
-> unshared last layers -> norm -> LM head. Routing starts after the first recursion, which
every token takes. Expert-choice routers pick the top `capacity` share of the still-active
tokens while training (hierarchical filtering) and threshold the same score at inference;
the auxiliary BCE loss teaches the score the top-k choice so the two agree. Keys and values
are cached per virtual layer (see `cache.py`), so the same code serves training, prefill and
decoding, and cached decoding gives the logits a recomputation gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.utils import ModelOutput

from llm_eff.mor.cache import MoRCache
from llm_eff.mor.config import MoRConfig


@dataclass
class MoROutput(ModelOutput):
    """Loss (LM + weighted router losses), logits, the cache, and the router losses apart."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: MoRCache | None = None
    lm_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    balance_loss: torch.Tensor | None = None
    z_loss: torch.Tensor | None = None
    layers_executed: torch.Tensor | None = None


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def rotary(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype) -> tuple:
    """(cos, sin) of shape (B, 1, T, head_dim) for integer positions (B, T)."""
    inv = theta ** -(torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    angles = positions[..., None].float() * inv
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


class MoRLayer(nn.Module):
    """A pre-norm decoder layer (attention with RoPE and GQA, SwiGLU MLP) on an MoRCache."""

    def __init__(self, config: MoRConfig) -> None:
        super().__init__()
        d, heads, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        self.heads, self.kv_heads, self.head_dim = heads, kv, d // heads
        self.q_proj = nn.Linear(d, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, d, bias=False)
        self.gate_proj = nn.Linear(d, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(d, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, d, bias=False)
        self.input_norm = nn.RMSNorm(d, eps=config.rms_norm_eps)
        self.post_norm = nn.RMSNorm(d, eps=config.rms_norm_eps)

    def forward(
        self,
        h: torch.Tensor,
        rope: tuple,
        positions: torch.Tensor,
        real: torch.Tensor,
        dense: bool,
        slot: int,
        cache: MoRCache,
        reuse: bool,
    ) -> torch.Tensor:
        """Run on h (B, T, D); keys go to `slot`, or are read from it when `reuse`."""
        b, t, _ = h.shape
        x = self.input_norm(h)
        q = _rotate(self.q_proj(x).view(b, t, self.heads, -1).transpose(1, 2), *rope)
        if reuse:
            entry = cache.get(slot)
        else:
            k = _rotate(self.k_proj(x).view(b, t, self.kv_heads, -1).transpose(1, 2), *rope)
            v = self.v_proj(x).view(b, t, self.kv_heads, -1).transpose(1, 2)
            entry = cache.append(slot, k, v, positions, real)
        keys, values = entry.keys, entry.values
        if self.kv_heads != self.heads:
            keys = keys.repeat_interleave(self.heads // self.kv_heads, dim=1)
            values = values.repeat_interleave(self.heads // self.kv_heads, dim=1)
        if dense and not reuse and keys.shape[2] == t:  # no past, all real, in position order
            out = F.scaled_dot_product_attention(q, keys, values, is_causal=t > 1)
        else:
            allowed = entry.real[:, None, :] & (
                entry.positions[:, None, :] <= positions[:, :, None]
            )
            allowed = allowed | ~real[:, :, None]  # filler queries see everything (no NaN rows)
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed[:, None])
        h = h + self.o_proj(out.transpose(1, 2).reshape(b, t, -1))
        x = self.post_norm(h)
        return h + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoRPreTrainedModel(PreTrainedModel):
    """Weights init and loading glue shared by the MoR model classes."""

    config_class = MoRConfig
    base_model_prefix = "model"
    _no_split_modules = ["MoRLayer"]
    _supports_sdpa = True


class MoRModel(MoRPreTrainedModel):
    """The decoder without its LM head: embeddings, unshared layers, shared block, routers."""

    def __init__(self, config: MoRConfig) -> None:
        super().__init__(config)
        first, last = config.unshared_layers
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.first = nn.ModuleList(MoRLayer(config) for _ in range(first))
        self.block = nn.ModuleList(MoRLayer(config) for _ in range(config.block_size))
        self.last = nn.ModuleList(MoRLayer(config) for _ in range(last))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        if config.router == "expert":
            self.routers = nn.ModuleList(
                nn.Linear(config.hidden_size, 1) for _ in range(config.num_recursions - 1)
            )
        elif config.router == "token":
            self.routers = nn.ModuleList([nn.Linear(config.hidden_size, config.num_recursions)])
        self.post_init()


class _Pack:
    """The active tokens of each row, gathered to the front in position order."""

    def __init__(self, active: torch.Tensor, counts: list[int]) -> None:
        width = max(counts)
        self.full = min(counts) == active.shape[1]
        order = torch.sort((~active).to(torch.int8), dim=1, stable=True).indices
        self.index = order[:, :width]
        self.real = torch.arange(width, device=active.device)[None, :] < active.sum(1)[:, None]
        self.dense = min(counts) == width

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """Gather (B, T, ...) to (B, width, ...)."""
        if self.full:
            return x
        index = self.index.view(*self.index.shape, *([1] * (x.dim() - 2)))
        return x.gather(1, index.expand(-1, -1, *x.shape[2:]))

    def put(self, x: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """Scatter the real rows of `new` back into x (B, T, D)."""
        if self.full:
            return new
        new = torch.where(self.real[..., None], new, self.take(x))
        return x.scatter(1, self.index[..., None].expand(-1, -1, x.shape[-1]), new)


class MoRForCausalLM(MoRPreTrainedModel, GenerationMixin):
    """Mixture-of-Recursions causal LM; works with `generate()`, `save_pretrained`, Auto classes."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: MoRConfig) -> None:
        super().__init__(config)
        self.model = MoRModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.last_cache: MoRCache | None = None
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the model makes its own MoRCache

    def get_input_embeddings(self) -> nn.Module:
        """The token embedding table."""
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        """Replace the token embedding table."""
        self.model.embed_tokens = value

    def depth_per_row(self) -> list[tuple[float, float]]:
        """(mean layer applications per token, share of full depth) per row of the last
        forward or generation."""
        rows = self.last_cache.mean_layers() if self.last_cache is not None else []
        return [(float(layers), layers / self.config.num_hidden_layers) for layers in rows]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: MoRCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> MoROutput:
        """Logits for the new tokens; with `labels`, the LM loss plus the router losses."""
        cfg = self.config
        h = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        b, t = h.shape[:2]
        use_cache = cfg.use_cache if use_cache is None else use_cache
        store = cache if cache is not None else MoRCache()
        past = store.seen_tokens
        real = torch.ones(b, t, dtype=torch.bool, device=h.device)
        if attention_mask is not None:
            real = attention_mask[:, -t:].bool()
        if position_ids is None:
            if attention_mask is not None:
                position_ids = attention_mask.long().cumsum(-1)[:, -t:] - 1
                if attention_mask.shape[1] != past + t:
                    position_ids = position_ids + past
                position_ids = position_ids.clamp(min=0)
            else:
                position_ids = torch.arange(past, past + t, device=h.device).expand(b, t)
        head_dim = cfg.hidden_size // cfg.num_attention_heads
        rope = rotary(position_ids, head_dim, cfg.rope_theta, h.dtype)
        dense = bool(real.all())
        losses: dict[str, torch.Tensor] = {}
        first, last = cfg.unshared_layers
        layers = torch.full((b, t), float(first + last), device=h.device)
        for i, layer in enumerate(self.model.first):
            h = layer(h, rope, position_ids, real, dense, i, store, False)
        h = self._recursions(h, rope, position_ids, real, store, layers, losses)
        base = first + cfg.block_size * cfg.num_recursions
        for i, layer in enumerate(self.model.last):
            h = layer(h, rope, position_ids, real, dense, base + i, store, False)
        h = self.model.norm(h)
        store.seen_tokens = past + t
        store.count(layers, real)
        self.last_cache = store
        return self._head(h, labels, logits_to_keep, losses, store if use_cache else None, layers)

    def _recursions(
        self,
        h: torch.Tensor,
        rope: tuple,
        positions: torch.Tensor,
        real: torch.Tensor,
        store: MoRCache,
        layers: torch.Tensor,
        losses: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        cfg = self.config
        active, choice, token_gate = real, None, None
        if cfg.router == "token":
            logits = self.model.routers[0](h).float()
            probs = logits.softmax(-1)
            choice = probs.argmax(-1)  # recursions taken - 1
            token_gate = probs.gather(-1, choice[..., None]).squeeze(-1)
            picked = F.one_hot(choice[real], cfg.num_recursions).float().mean(0)
            losses["balance_loss"] = cfg.num_recursions * (picked * probs[real].mean(0)).sum()
            losses["z_loss"] = logits[real].logsumexp(-1).pow(2).mean()
        for r in range(cfg.num_recursions):
            gate = None
            if r and cfg.router == "expert":
                logit = self.model.routers[r - 1](h).squeeze(-1).float()
                if self.training:
                    chosen = _top_share(logit, active, real, cfg.capacity[r - 1])
                    bce = F.binary_cross_entropy_with_logits(logit[active], chosen[active].float())
                    losses["aux_loss"] = losses.get("aux_loss", 0) + bce
                else:
                    chosen = active & (torch.sigmoid(logit) > cfg.router_threshold)
                z = F.softplus(logit[active]).pow(2).mean()
                losses["z_loss"] = losses.get("z_loss", 0) + z
                active, gate = chosen, torch.sigmoid(logit)
            elif choice is not None:
                if r:
                    active = active & (choice >= r)
                gate = torch.where(choice == r, token_gate, torch.ones_like(token_gate))
            h = self._recursion(h, r, rope, positions, active, gate, store)
            layers += active * cfg.block_size
        return h

    def _recursion(
        self,
        h: torch.Tensor,
        r: int,
        rope: tuple,
        positions: torch.Tensor,
        active: torch.Tensor,
        gate: torch.Tensor | None,
        store: MoRCache,
    ) -> torch.Tensor:
        cfg = self.config
        counts = active.sum(1).tolist()
        if max(counts) == 0:
            return h
        pack = _Pack(active, counts)
        x0 = x = pack.take(h)
        sub_rope = (
            pack.take(rope[0].squeeze(1)).unsqueeze(1),
            pack.take(rope[1].squeeze(1)).unsqueeze(1),
        )
        sub_pos, sub_real = pack.take(positions), pack.real
        base = cfg.unshared_layers[0]
        for j, layer in enumerate(self.model.block):
            reuse = cfg.kv_cache == "shared" and r > 0
            slot = base + j if reuse else base + r * cfg.block_size + j
            x = layer(x, sub_rope, sub_pos, sub_real, pack.dense, slot, store, reuse)
        if gate is not None:
            x = x0 + (x - x0) * pack.take(gate)[..., None].to(x.dtype)
        return pack.put(h, x)

    def _head(
        self,
        h: torch.Tensor,
        labels: torch.Tensor | None,
        logits_to_keep: int,
        losses: dict[str, torch.Tensor],
        cache: MoRCache | None,
        layers: torch.Tensor,
    ) -> MoROutput:
        cfg = self.config
        if labels is None and logits_to_keep:
            h = h[:, -logits_to_keep:]
        logits = self.lm_head(h)
        out = MoROutput(logits=logits, cache=cache, layers_executed=layers, **losses)
        if labels is not None:
            lm = F.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100
            )
            total = lm
            for name, coef in (
                ("aux_loss", cfg.aux_loss_coef),
                ("balance_loss", cfg.balance_loss_coef),
                ("z_loss", cfg.z_loss_coef),
            ):
                if name in losses:
                    total = total + coef * losses[name]
            out.lm_loss, out.loss = lm, total
        return out


def _top_share(
    logit: torch.Tensor, eligible: torch.Tensor, real: torch.Tensor, share: float
) -> torch.Tensor:
    """Per row, the top ceil(share x real tokens) eligible tokens by router logit."""
    k = torch.ceil(real.sum(1).float() * share).long().clamp(min=1)
    scores = logit.masked_fill(~eligible, -math.inf)
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
    return eligible & (rank < k[:, None])
