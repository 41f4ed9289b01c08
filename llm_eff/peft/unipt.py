"""UniPT (Diao et al., "UniPT: Universal Parallel Tuning for Transfer Learning with Efficient
Parameter and Memory", CVPR 2024; arXiv 2023).

A lightweight network runs in parallel to the frozen backbone (no autograd graph through it) and
reads all of its layer outputs h_1..h_L, each projected down to width d/r:

- parallel interaction module: every layer's features are related to the final layer's: the
  final layer's features attend (causally, so the LM stays autoregressive) over layer l's,
  giving r_l for each layer;
- confidence aggregation module: a small scorer looks at [z_L; r_l] per token, a softmax over
  layers turns the scores into confidences, and the weighted sum of the r_l is normalised and
  projected back up (initialised to zero) onto the final hidden state before the frozen LM head.

Architecture-agnostic: any causal LM that returns per-layer hidden states works.
"""

from __future__ import annotations

import torch
from torch import nn

from llm_eff.peft.config import MethodConfig
from llm_eff.peft.side import SideTuned, causal_attention


class UniPTModel(SideTuned):
    """A frozen causal LM with a UniPT parallel network (see the module docstring)."""

    method = "unipt"
    peft_type = "UNIPT"

    def __init__(self, backbone: nn.Module, config: MethodConfig) -> None:
        super().__init__(backbone, config)
        d = self.config.hidden_size
        layers = self.config.num_hidden_layers
        width = max(1, d // config.reduction)
        self.width = width
        self.downs = nn.ModuleList(nn.Linear(d, width, bias=False) for _ in range(layers))
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.confidence = nn.Sequential(nn.Linear(2 * width, width), nn.Tanh(), nn.Linear(width, 1))
        self.norm = nn.LayerNorm(width)
        self.up_proj = nn.Linear(width, d, bias=False)
        with torch.no_grad():
            self.up_proj.weight.zero_()

    def side(
        self, hidden: tuple[torch.Tensor, ...], start: int, cache: dict | None
    ) -> torch.Tensor:
        """Interaction of each layer with the last, confidence-weighted over layers."""
        z = torch.stack(
            [down(h.float()) for down, h in zip(self.downs, hidden[1:], strict=True)], dim=1
        )  # (B, L, T, w)
        final = z[:, -1]
        q = self.query(final).unsqueeze(1).expand(-1, z.shape[1], -1, -1)
        related = causal_attention(q, self.key(z), self.value(z), cache, "unipt")
        scores = self.confidence(torch.cat([final.unsqueeze(1).expand_as(related), related], -1))
        weights = torch.softmax(scores, dim=1)
        return self.up_proj(self.norm((weights * related).sum(1)))
