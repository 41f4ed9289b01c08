"""Next-token loss computed from the final hidden states in chunks of tokens.

The usual loss materialises (batch x length x vocabulary) logits, their float copy, the
log-softmax kept for backward and the gradient of each: with a 49k-token vocabulary and
8 x 512 tokens that is over 2 GB, often more than the rest of a parameter-efficient step.
Here the LM head and cross-entropy run `chunk` tokens at a time under activation
checkpointing, so only one chunk's logits exist at once (they are recomputed in backward).
The value equals the usual mean loss over non-ignored tokens. Every method in `train_loop` uses
it, so their memory stays comparable.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from llm_eff.peft.side import SideTuned, backbone_parts

DEFAULT_CHUNK = 1024


def _chunk_loss(hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, ignore_index=-100, reduction="sum")


def chunked_next_token_loss(
    hidden: torch.Tensor, head: torch.nn.Module, labels: torch.Tensor, chunk: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """Mean cross-entropy of `head(hidden)` against `labels` shifted by one (-100 ignored)."""
    targets = F.pad(labels[:, 1:], (0, 1), value=-100).reshape(-1)
    flat = hidden.reshape(-1, hidden.shape[-1])
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, flat.shape[0], chunk):
        part = targets[start : start + chunk]
        if bool((part != -100).any()):
            total = total + checkpoint(
                _chunk_loss, flat[start : start + chunk], part, head, use_reentrant=False
            )
    return total / (targets != -100).sum().clamp(min=1)


def _plain_causal_lm(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)  # None for a DDP wrapper: it must run its forward
    if config is None or getattr(config, "final_logit_softcapping", None):
        return None  # logits are post-processed: use the model's own loss
    return base


def training_loss(model: Any, batch: dict[str, torch.Tensor], chunk: int = DEFAULT_CHUNK) -> Any:
    """The next-token loss of `model` on `batch`, with the LM head applied chunk by chunk
    (side-tuned models, plain and peft-wrapped Hugging Face causal LMs; anything else falls
    back to `model(**batch).loss`)."""
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch.get("attention_mask")}
    if isinstance(model, SideTuned):
        hidden, _ = model.final_hidden(**inputs)
        return chunked_next_token_loss(hidden, model.lm_head, batch["labels"], chunk)
    base = _plain_causal_lm(model)
    if base is not None:
        try:
            decoder, head = backbone_parts(base)
        except Exception:  # noqa: BLE001 - not a decoder + head model: use its own loss
            decoder = None
        if decoder is not None:
            hidden = decoder(**inputs).last_hidden_state
            return chunked_next_token_loss(hidden, head, batch["labels"], chunk)
    return model(**batch).loss
