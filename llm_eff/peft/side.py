"""Side-network tuning: a frozen backbone plus a small trainable network beside it.

Ladder Side-Tuning and UniPT both read the backbone's per-layer hidden states, computed under
`torch.no_grad()` so no autograd graph is built through the backbone, and add a correction to
the backbone's final hidden state before its (frozen) LM head. Backward therefore only touches
the side network, which is where their training-memory saving comes from.

`SideTuned` holds what they share: the forward pass and loss, greedy generation with a KV cache
for backbone and side network, and saving/loading in peft's file layout
(`adapter_config.json` + `adapter_model.safetensors`) with a `from_pretrained` classmethod.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from llm_eff.core.errors import UserError
from llm_eff.peft.config import MethodConfig

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (the Llama family's)."""

    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last dimension."""
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: dict | None, key: str
) -> torch.Tensor:
    """Scaled dot-product attention, causal on a fresh sequence; with `cache`, new keys and
    values are appended under `key` and a single new query attends to all of them."""
    if cache is not None:
        if key in cache:
            k = torch.cat([cache[key][0], k], dim=-2)
            v = torch.cat([cache[key][1], v], dim=-2)
        cache[key] = (k, v)
    fresh = k.shape[-2] == q.shape[-2]
    if not fresh and q.shape[-2] != 1:
        raise ValueError("cached attention takes one new token at a time")
    return F.scaled_dot_product_attention(q, k, v, is_causal=fresh and q.shape[-2] > 1)


def backbone_parts(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(decoder, lm_head) of a Hugging Face causal LM; UserError when it has no such parts."""
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if decoder is None or head is None or decoder is model:
        raise UserError(
            f"{type(model).__name__} is not a causal LM with a decoder and an LM head; "
            "side-network methods (lst, unipt) need one"
        )
    return decoder, head


def shifted_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy; label -100 is ignored. The labels are shifted rather than the
    logits, so the (batch x length x vocabulary) logits are not copied."""
    targets = F.pad(labels[:, 1:], (0, 1), value=-100)
    return F.cross_entropy(
        logits.float().view(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )


class SideTuned(nn.Module):
    """A frozen causal LM plus a trainable side network; subclasses define `side`."""

    method: ClassVar[str] = ""
    peft_type: ClassVar[str] = ""

    def __init__(self, backbone: nn.Module, config: MethodConfig) -> None:
        super().__init__()
        self._parts = backbone_parts(backbone)  # a tuple: not registered twice as submodules
        backbone.requires_grad_(False)
        backbone.eval()
        self.backbone = backbone
        self.method_config = config
        self.config = backbone.config
        # transformers 5 renamed the decoder's `past_key_values` argument and output to `cache`
        params = inspect.signature(self._parts[0].forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def side(
        self, hidden: tuple[torch.Tensor, ...], start: int, cache: dict | None
    ) -> torch.Tensor:
        """The correction added to the backbone's final hidden state (B, T, d)."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> SideTuned:
        """Train mode for the side network; the backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def side_parameters(self) -> dict[str, torch.Tensor]:
        """The side network's state (parameters and buffers), without the backbone."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    @property
    def lm_head(self) -> nn.Module:
        """The backbone's (frozen) LM head."""
        return self._parts[1]

    def final_hidden(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past: Any = None,
        cache: dict | None = None,
        start: int = 0,
    ) -> tuple[torch.Tensor, Any]:
        """(backbone's final hidden state plus the side correction, backbone KV cache)."""
        decoder = self._parts[0]
        kwargs: dict[str, Any] = {"use_cache": cache is not None}
        if past is not None:
            kwargs[self._cache_arg] = past
        with torch.no_grad():
            out = decoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_hidden_states=True,
                **kwargs,
            )
        hidden = tuple(h.detach() for h in out.hidden_states)
        final = hidden[-1] + self.side(hidden, start, cache).to(hidden[-1].dtype)
        return final, getattr(out, self._cache_arg, None)

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past: Any = None,
        cache: dict | None = None,
        start: int = 0,
    ) -> tuple[torch.Tensor, Any]:
        final, past = self.final_hidden(input_ids, attention_mask, past, cache, start)
        return self.lm_head(final), past

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: Any,
    ) -> Any:
        """Logits (and the next-token loss when `labels` are given), as a CausalLMOutput."""
        from transformers.modeling_outputs import CausalLMOutput

        logits, _ = self._run(input_ids, attention_mask)
        loss = shifted_loss(logits, labels) if labels is not None else None
        return CausalLMOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 128,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        do_sample: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        num_return_sequences: int = 1,
        stop_strings: list[str] | None = None,
        tokenizer: Any = None,
        **_: Any,
    ) -> torch.Tensor:
        """Hugging Face's `generate` contract: a left-padded batch in, `num_return_sequences`
        rows per prompt out (prompt row, then new tokens, padded after a stop), greedy or
        sampled with temperature / top-p, stopping at EOS or a stop string. Each sequence is
        decoded on its own with KV caches for the backbone and the side network."""
        if eos_token_id is None:
            eos_token_id = getattr(
                getattr(self.backbone, "generation_config", None), "eos_token_id", None
            )
        stops = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id or [])
        pad = pad_token_id if pad_token_id is not None else next(iter(stops), 0)
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        rows: list[torch.Tensor] = []
        for prompt, keep in zip(input_ids, mask.bool(), strict=True):
            for _ in range(num_return_sequences):
                new = self._decode_one(
                    prompt[keep].unsqueeze(0),
                    max_new_tokens,
                    stops,
                    do_sample,
                    temperature or 1.0,
                    top_p or 1.0,
                    stop_strings,
                    tokenizer,
                )
                rows.append(torch.cat([prompt, new]))
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), pad, dtype=input_ids.dtype, device=input_ids.device)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def _decode_one(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int,
        stops: set[int],
        do_sample: bool,
        temperature: float,
        top_p: float,
        stop_strings: list[str] | None,
        tokenizer: Any,
    ) -> torch.Tensor:
        """New tokens for one unpadded prompt (1, T)."""
        cache: dict = {}
        logits, past = self._run(prompt, None, None, cache, 0)
        new: list[int] = []
        for _ in range(max_new_tokens):
            nxt = _next_token(logits[0, -1], do_sample, temperature, top_p)
            new.append(nxt)
            if nxt in stops:
                break
            if stop_strings and tokenizer is not None:
                text = tokenizer.decode(new, skip_special_tokens=True)
                if any(stop in text for stop in stop_strings):
                    break
            step = torch.tensor([[nxt]], device=prompt.device)
            logits, past = self._run(step, None, past, cache, prompt.shape[1] + len(new) - 1)
        return torch.tensor(new, dtype=prompt.dtype, device=prompt.device)

    def save_pretrained(self, out_dir: str | Path) -> None:
        """Write `adapter_config.json` and `adapter_model.safetensors` (side network only)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.side_parameters().items()}
        save_file(tensors, str(out / WEIGHTS_NAME))
        config = {
            "peft_type": self.peft_type,
            "llm_eff_method": self.method,
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": getattr(self.config, "_name_or_path", ""),
            "method_config": self.method_config.to_dict(),
        }
        (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, backbone: nn.Module, adapter_dir: str | Path) -> SideTuned:
        """Rebuild the side network over `backbone` and load its saved weights."""
        from safetensors.torch import load_file

        path = Path(adapter_dir)
        saved = json.loads((path / CONFIG_NAME).read_text())
        model = cls(backbone, MethodConfig.from_dict(saved.get("method_config", {})))
        state = load_file(str(path / WEIGHTS_NAME))
        missing, unexpected = model.load_state_dict(state, strict=False)
        side_missing = [k for k in missing if k in model.side_parameters()]
        if side_missing or unexpected:
            raise UserError(
                f"{path}: adapter does not match this model "
                f"(missing {side_missing[:3]}, unexpected {list(unexpected)[:3]})"
            )
        return model


def _next_token(logits: torch.Tensor, do_sample: bool, temperature: float, top_p: float) -> int:
    """The argmax, or a sample through transformers' own temperature and top-p warpers."""
    if not do_sample:
        return int(logits.argmax())
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    scores = warpers(None, logits.float().unsqueeze(0))
    return int(torch.multinomial(torch.softmax(scores, dim=-1), 1))
