"""`MoRConfig`: the shape of a Mixture-of-Recursions model and the checks that keep it valid.

`num_hidden_layers` is the depth a token gets when it takes every recursion, as in the paper's
conversion of an L-layer model. With Middle-Cycle sharing the first and last layers are unique and
the `num_hidden_layers - 2` middle layers are one shared block of `(L - 2) / num_recursions`
layers applied up to `num_recursions` times; with Cycle sharing all L layers form the block.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

SHARINGS = ("middle_cycle", "cycle")
ROUTERS = ("expert", "token", "none")
KV_CACHES = ("recursion", "shared")


class MoRConfig(PretrainedConfig):
    """Configuration of `MoRForCausalLM` (a Llama-style decoder with recursive, routed depth).

    Routing: `router="expert"` (expert-choice: at each recursion after the first, a linear
    router keeps the top `capacity[r-1]` share of the tokens still running, trained with an
    auxiliary BCE loss so a 0.5 threshold reproduces the choice causally at inference),
    `"token"` (token-choice: one router picks each token's number of recursions, with a
    balancing loss) or `"none"` (every token takes every recursion). Both routers add a z-loss.
    KV cache: `"recursion"` caches keys per recursion depth, so a token attends only to tokens
    that reached the same depth; `"shared"` reuses the first recursion's keys in all later ones.
    """

    model_type = "mor"

    def __init__(
        self,
        vocab_size: int = 49152,
        hidden_size: int = 256,
        intermediate_size: int = 688,
        num_hidden_layers: int = 8,
        num_attention_heads: int = 4,
        num_key_value_heads: int | None = None,
        num_recursions: int = 2,
        sharing: str = "middle_cycle",
        router: str = "expert",
        capacity: list[float] | None = None,
        kv_cache: str = "recursion",
        router_threshold: float = 0.5,
        aux_loss_coef: float = 0.1,
        balance_loss_coef: float = 0.1,
        z_loss_coef: float = 1e-3,
        max_position_embeddings: int = 2048,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.num_recursions = num_recursions
        self.sharing = sharing
        self.router = router
        if capacity is None:  # the paper's schedule: (N_r - r) / N_r for recursions r >= 1
            capacity = [(num_recursions - r) / num_recursions for r in range(1, num_recursions)]
        self.capacity = list(capacity)
        self.kv_cache = kv_cache
        self.router_threshold = router_threshold
        self.aux_loss_coef = aux_loss_coef
        self.balance_loss_coef = balance_loss_coef
        self.z_loss_coef = z_loss_coef
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.initializer_range = initializer_range
        self.use_cache = kwargs.pop("use_cache", True)
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        self.check()

    @property
    def unshared_layers(self) -> tuple[int, int]:
        """(layers before the shared block, layers after it)."""
        return (1, 1) if self.sharing == "middle_cycle" else (0, 0)

    @property
    def block_size(self) -> int:
        """Layers in the shared block applied once per recursion."""
        first, last = self.unshared_layers
        return (self.num_hidden_layers - first - last) // self.num_recursions

    def check(self) -> None:
        """Raise ValueError, naming the setting, for any invalid sharing/recursion setting."""
        n_r, depth = self.num_recursions, self.num_hidden_layers
        if not isinstance(n_r, int) or n_r < 1:
            raise ValueError(f"num_recursions must be an integer >= 1, got {n_r!r}")
        if self.sharing not in SHARINGS:
            raise ValueError(f"sharing must be one of {SHARINGS}, got {self.sharing!r}")
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.kv_cache not in KV_CACHES:
            raise ValueError(f"kv_cache must be one of {KV_CACHES}, got {self.kv_cache!r}")
        middle = depth - sum(self.unshared_layers)
        if middle < n_r or middle % n_r:
            what = (
                "num_hidden_layers - 2" if self.sharing == "middle_cycle" else "num_hidden_layers"
            )
            raise ValueError(
                f"{self.sharing} sharing needs {what} ({middle}) to be a positive multiple of "
                f"num_recursions ({n_r})"
            )
        if self.router != "none" and n_r < 2:
            raise ValueError(f"router '{self.router}' needs num_recursions >= 2")
        if self.router == "expert":
            caps = self.capacity
            if len(caps) != n_r - 1 or any(not 0 < c <= 1 for c in caps):
                raise ValueError(
                    f"capacity needs {n_r - 1} shares in (0, 1] (one per recursion after the "
                    f"first), got {caps}"
                )
            if any(b > a for a, b in zip(caps, caps[1:], strict=False)):
                raise ValueError(f"capacity must not grow from one recursion to the next: {caps}")
        if not 0 < self.router_threshold < 1:
            raise ValueError(f"router_threshold must be in (0, 1), got {self.router_threshold}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("the head dimension must be even (rotary embeddings)")
