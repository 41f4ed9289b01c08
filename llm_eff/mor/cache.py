"""`MoRCache`: keys and values per virtual layer, holding only the tokens that reached it.

A virtual layer is one application of a layer: the unshared layers, and each shared-block layer
at each recursion depth. Next to the keys and values the cache keeps each key's position and
whether it is real (a token that was routed to this depth and is not padding), so a query attends
exactly to the real keys at or before its position. In a batch every row appends one slot per
step; rows whose token did not reach a depth append a slot marked not real.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Entry:
    """One virtual layer's cached keys/values (B, H, S, D), key positions and realness (B, S)."""

    keys: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    real: torch.Tensor


@dataclass
class MoRCache:
    """Recursion-wise KV cache for `MoRForCausalLM` (pass it back as `cache` when decoding)."""

    entries: dict[int, Entry] = field(default_factory=dict)
    seen_tokens: int = 0
    layer_sums: torch.Tensor | None = None  # layer applications per row, summed over tokens
    token_counts: torch.Tensor | None = None  # real tokens per row
    is_compileable: bool = False
    is_croppable: bool = False

    def append(
        self,
        slot: int,
        keys: torch.Tensor,
        values: torch.Tensor,
        positions: torch.Tensor,
        real: torch.Tensor,
    ) -> Entry:
        """Add new keys at `slot` and return everything cached there, the new keys included."""
        old = self.entries.get(slot)
        if old is None:
            entry = Entry(keys, values, positions, real)
        else:
            entry = Entry(
                torch.cat([old.keys, keys], dim=2),
                torch.cat([old.values, values], dim=2),
                torch.cat([old.positions, positions], dim=1),
                torch.cat([old.real, real], dim=1),
            )
        self.entries[slot] = entry
        return entry

    def get(self, slot: int) -> Entry:
        """What is cached at `slot` (recursive KV sharing reads the first recursion's slot)."""
        return self.entries[slot]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens fed through the model so far (padding included), as `generate` expects."""
        return self.seen_tokens

    def count(self, layers: torch.Tensor, real: torch.Tensor) -> None:
        """Add this step's per-token layer applications (B, T) to the per-row totals."""
        sums = (layers * real).sum(dim=1).float()
        counts = real.sum(dim=1).float()
        if self.layer_sums is None or self.layer_sums.shape != sums.shape:
            self.layer_sums, self.token_counts = sums, counts
        else:
            self.layer_sums = self.layer_sums + sums
            self.token_counts = self.token_counts + counts

    def mean_layers(self) -> list[float]:
        """Mean layer applications per real token, per batch row, over everything cached."""
        if self.layer_sums is None or self.token_counts is None:
            return []
        return (self.layer_sums / self.token_counts.clamp(min=1)).tolist()
