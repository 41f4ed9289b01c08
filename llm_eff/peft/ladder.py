"""Ladder Side-Tuning (Sung, Cho and Bansal, "LST: Ladder Side-Tuning for Parameter and Memory
Efficient Transfer Learning", NeurIPS 2022).

The backbone runs frozen and without an autograd graph. Beside it, a thin side network (every
width divided by the reduction factor r, default 8) takes, at each layer i, a gated mix of its
own running state and a learned down-projection of the backbone's hidden state entering layer i
(the "ladder"): x <- mu_i * down_i(h_i) + (1 - mu_i) * x, mu_i = sigmoid(alpha_i / T). The side
output is projected up (initialised to zero, so training starts from the backbone) and added to
the backbone's final hidden state before the frozen LM head.

Side layers are initialised from the backbone's own layers by structured pruning: the residual
dimensions, RoPE frequency pairs of each attention head, value dimensions and MLP channels with
the largest weight norms are kept, and the side layer starts as that slice of the backbone layer
(the ladder's down-projections start as the matching selection). Supported: decoder-only models
with Llama-style layers (Llama, Mistral, Qwen2 families).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llm_eff.core.errors import UserError
from llm_eff.peft.config import MethodConfig
from llm_eff.peft.side import RMSNorm, SideTuned, causal_attention

SUPPORTED = ("llama", "mistral", "qwen2")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, k).indices).values


class SideLayer(nn.Module):
    """A narrow Llama-style decoder layer pruned from one backbone layer."""

    def __init__(self, layer: nn.Module, dims: torch.Tensor, r: int, config: object) -> None:
        super().__init__()
        attn, mlp = layer.self_attn, layer.mlp
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        half = head_dim // 2
        pairs = max(1, half // r)
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, 2 * pairs
        q_w, k_w = attn.q_proj.weight.float(), attn.k_proj.weight.float()
        # RoPE pairs (j, j + half) with the largest query and key norms, the same in every head
        pair_score = q_w.view(heads, head_dim, -1).norm(dim=-1).pow(2).sum(0) + k_w.view(
            kv_heads, head_dim, -1
        ).norm(dim=-1).pow(2).sum(0)
        j = _top(pair_score[:half] + pair_score[half:], pairs)
        qk_dims = torch.cat([j, j + half])
        v_w = attn.v_proj.weight.float()
        v_dims = _top(v_w.view(kv_heads, head_dim, -1).norm(dim=-1).sum(0), 2 * pairs)

        def rows(w: torch.Tensor, n: int, keep: torch.Tensor) -> torch.Tensor:
            return torch.cat([w.view(n, head_dim, -1)[h, keep] for h in range(n)])

        def head_bias(b: torch.Tensor | None, n: int, keep: torch.Tensor) -> torch.Tensor | None:
            return (
                None if b is None else torch.cat([b.view(n, head_dim)[h, keep] for h in range(n)])
            )

        self.q = _linear(
            rows(q_w, heads, qk_dims)[:, dims], head_bias(attn.q_proj.bias, heads, qk_dims)
        )
        self.k = _linear(
            rows(k_w, kv_heads, qk_dims)[:, dims], head_bias(attn.k_proj.bias, kv_heads, qk_dims)
        )
        self.v = _linear(
            rows(v_w, kv_heads, v_dims)[:, dims], head_bias(attn.v_proj.bias, kv_heads, v_dims)
        )
        o_w = attn.o_proj.weight.float()[dims].view(len(dims), heads, head_dim)
        self.o = _linear(o_w[:, :, v_dims].reshape(len(dims), -1), None)
        gate_w, up_w, down_w = (
            mlp.gate_proj.weight.float(),
            mlp.up_proj.weight.float(),
            mlp.down_proj.weight.float(),
        )
        channels = _top(
            gate_w.norm(dim=1) * up_w.norm(dim=1) * down_w.norm(dim=0),
            max(1, gate_w.shape[0] // r),
        )
        self.gate = _linear(gate_w[channels][:, dims], None)
        self.up = _linear(up_w[channels][:, dims], None)
        self.down = _linear(down_w[dims][:, channels], None)
        eps = getattr(config, "rms_norm_eps", 1e-6)
        self.norm1 = RMSNorm(layer.input_layernorm.weight[dims], eps)
        self.norm2 = RMSNorm(layer.post_attention_layernorm.weight[dims], eps)
        self.register_buffer("pairs", j.clone())

    def forward(
        self, x: torch.Tensor, inv_freq: torch.Tensor, start: int, cache: dict | None, key: str
    ) -> torch.Tensor:
        """One pre-norm attention + SwiGLU MLP block, RoPE on the kept frequency pairs."""
        b, t, _ = x.shape
        h = self.norm1(x)
        q = self.q(h).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        positions = torch.arange(start, start + t, device=x.device, dtype=torch.float32)
        freqs = positions[:, None] * inv_freq[self.pairs].float()[None]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos().to(q.dtype), emb.sin().to(q.dtype)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if self.kv_heads != self.heads:
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        att = causal_attention(q, k, v, cache, key)
        x = x + self.o(att.transpose(1, 2).reshape(b, t, -1))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class LadderSideModel(SideTuned):
    """A frozen causal LM with a ladder side network (see the module docstring)."""

    method = "lst"
    peft_type = "LST"

    def __init__(self, backbone: nn.Module, config: MethodConfig) -> None:
        super().__init__(backbone, config)
        model_type = getattr(self.config, "model_type", "")
        decoder = self._parts[0]
        layers = getattr(decoder, "layers", None)
        rotary = getattr(decoder, "rotary_emb", None)
        if model_type not in SUPPORTED or layers is None or rotary is None:
            raise UserError(
                f"method lst supports {', '.join(SUPPORTED)} models, not '{model_type}'"
            )
        r = config.reduction
        d = self.config.hidden_size
        width = max(1, d // r)
        with torch.no_grad():
            score = torch.zeros(d)
            for layer in layers:
                a, m = layer.self_attn, layer.mlp
                for w in (a.q_proj.weight, a.k_proj.weight, a.v_proj.weight):
                    score += w.float().pow(2).sum(0)
                for w in (m.gate_proj.weight, m.up_proj.weight):
                    score += w.float().pow(2).sum(0)
                score += a.o_proj.weight.float().pow(2).sum(1)
                score += m.down_proj.weight.float().pow(2).sum(1)
            dims = _top(score, width)
            self.register_buffer("dims", dims.clone())
            self.register_buffer("inv_freq", rotary.inv_freq.detach().float().clone())
            self.layers = nn.ModuleList(SideLayer(lay, dims, r, self.config) for lay in layers)
            select = torch.zeros(width, d)
            select[torch.arange(width), dims] = 1.0
            self.downs = nn.ModuleList(_linear(select.clone(), None) for _ in range(len(layers)))
            self.gates = nn.Parameter(torch.zeros(len(layers)))
            self.norm = RMSNorm(
                decoder.norm.weight[dims], getattr(self.config, "rms_norm_eps", 1e-6)
            )
            self.up_proj = nn.Linear(width, d, bias=False)
            self.up_proj.weight.zero_()

    def side(
        self, hidden: tuple[torch.Tensor, ...], start: int, cache: dict | None
    ) -> torch.Tensor:
        """Run the side network up the ladder and project its output to the model width."""
        mu = torch.sigmoid(self.gates / self.method_config.gate_temperature)
        x = self.downs[0](hidden[0].float())
        for i, layer in enumerate(self.layers):
            if i:
                x = mu[i] * self.downs[i](hidden[i].float()) + (1 - mu[i]) * x
            x = layer(x, self.inv_freq, start, cache, f"l{i}")
        return self.up_proj(self.norm(x))
