"""The NetLLM adapter: task encoder -> language model (LoRA) -> networking head.

- Multimodal encoder: observations become token embeddings directly (no text): for viewport
  prediction one token per history sample (its angles relative to the last sample) plus a
  query token; for ABR, decision-transformer style, three tokens per chunk: return-to-go,
  state (buffer, last bitrate, recent throughputs and download times, next chunk sizes,
  chunks left) and the action taken, each with a chunk-index embedding.
- The backbone is any Hugging Face causal LM; only its decoder runs (no vocabulary
  projection), adapted with LoRA on the attention projections.
- Networking head: one linear layer on the last relevant hidden state that outputs the answer
  in one pass: 6 bitrate logits (argmax: always a valid level) or horizon x 3 angle changes
  (zero-initialised, so training starts from the last-value prediction).
Training is supervised on collected experience: the windows of the training users (VP), or
the baselines' rollouts on the training traces with their returns-to-go (ABR).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llm_eff.core.errors import UserError
from llm_eff.netllm.abr import BITRATES_KBPS, HISTORY, Observation
from llm_eff.peft import MethodConfig, prepare
from llm_eff.peft.side import backbone_parts

HEADS_FILE = "netllm_heads.safetensors"
CONFIG_FILE = "netllm_config.json"
STATE_FEATURES = 3 + 2 * HISTORY + len(BITRATES_KBPS)
RETURN_SCALE = 50.0
MAX_CHUNKS = 64


def abr_features(obs: Observation) -> np.ndarray:
    """The ABR state as a fixed-size feature vector (scaled to about [0, 1])."""
    throughputs = np.zeros(HISTORY)
    downloads = np.zeros(HISTORY)
    if obs.throughputs_mbps:
        throughputs[-len(obs.throughputs_mbps) :] = np.array(obs.throughputs_mbps) / 10.0
        downloads[-len(obs.download_s) :] = np.array(obs.download_s) / 10.0
    return np.concatenate(
        [
            [obs.buffer_s / 10.0, obs.last_level / (len(BITRATES_KBPS) - 1), obs.chunks_left / 48],
            throughputs,
            downloads,
            obs.next_sizes / 1e6,
        ]
    ).astype(np.float32)


class NetLLM(nn.Module):
    """Encoder, LoRA-adapted decoder and head for one task ('abr' or 'vp')."""

    def __init__(
        self,
        backbone: nn.Module,
        task: str,
        horizon: int = 5,
        history: int = 10,
        rank: int = 8,
        action_tokens: bool = False,
    ) -> None:
        super().__init__()
        if task not in ("abr", "vp"):
            raise UserError(f"unknown NetLLM task '{task}': use abr or vp")
        self.task, self.horizon, self.history, self.rank = task, horizon, history, rank
        # ABR: NetLLM's layout adds each past action as a token; by default the previous
        # level reaches the model only through the state's last-level feature (behaviour
        # cloning with action tokens can lean on copying the previous action)
        self.action_tokens = action_tokens
        self.lm = prepare(
            backbone, MethodConfig("lora", rank=rank, target_modules=("q_proj", "v_proj"))
        )
        decoder, _ = backbone_parts(self.lm.get_base_model())
        self._decoder = (decoder,)  # a tuple: not registered twice
        d = backbone.config.hidden_size
        if task == "vp":
            self.encode_angles = nn.Linear(3, d)
            self.positions = nn.Parameter(torch.zeros(history + 1, d))
            self.query = nn.Parameter(torch.randn(d) * 0.02)
            self.head = nn.Linear(d, horizon * 3)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        else:
            self.encode_return = nn.Linear(1, d)
            self.encode_state = nn.Sequential(
                nn.Linear(STATE_FEATURES, d), nn.GELU(), nn.Linear(d, d)
            )
            self.encode_action = nn.Embedding(len(BITRATES_KBPS), d)
            self.timestep = nn.Embedding(MAX_CHUNKS, d)
            self.head = nn.Linear(d, len(BITRATES_KBPS))

    def _hidden(self, embeds: torch.Tensor) -> torch.Tensor:
        dtype = next(self._decoder[0].parameters()).dtype
        return self._decoder[0](inputs_embeds=embeds.to(dtype)).last_hidden_state.float()

    def predict_vp(self, history: torch.Tensor) -> torch.Tensor:
        """Angle changes (B, horizon, 3) in units of 90 degrees from normalised history."""
        tokens = self.encode_angles(history)
        query = self.query.expand(history.shape[0], 1, -1)
        embeds = torch.cat([tokens, query], dim=1) + self.positions[: history.shape[1] + 1]
        return self.head(self._hidden(embeds)[:, -1]).view(-1, self.horizon, 3)

    def abr_logits(
        self,
        returns: torch.Tensor,
        states: torch.Tensor,
        actions: torch.Tensor,
        steps: torch.Tensor,
    ) -> torch.Tensor:
        """Bitrate logits (B, T, 6) at every state token. Tokens per chunk: return, state and,
        with `action_tokens`, the action (after the state token, so actions[:, t] is never used
        for t's own prediction)."""
        time = self.timestep(steps.clamp(max=MAX_CHUNKS - 1))
        parts = [self.encode_return(returns.unsqueeze(-1)) + time, self.encode_state(states) + time]
        if self.action_tokens:
            parts.append(self.encode_action(actions) + time)
        b, t, d = parts[1].shape
        k = len(parts)
        embeds = torch.stack(parts, dim=2).reshape(b, k * t, d)
        hidden = self._hidden(embeds).view(b, t, k, d)[:, :, 1]
        return self.head(hidden)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """LoRA, encoder and head parameters."""
        return [p for p in self.parameters() if p.requires_grad]

    def save(self, out: str | Path, base_model: str) -> None:
        """LoRA in peft's format plus the encoder/head weights and the task config."""
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(str(out))
        heads = {
            k: v.detach().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("lm.")
        }
        save_file(heads, str(out / HEADS_FILE))
        config = {
            "task": self.task,
            "horizon": self.horizon,
            "history": self.history,
            "rank": self.rank,
            "action_tokens": self.action_tokens,
            "base_model": base_model,
        }
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def load_netllm(directory: str | Path) -> tuple[NetLLM, dict[str, Any]]:
    """A saved adapter over a fresh copy of its base model; (model, config)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from llm_eff.peft.train import load_base

    path = Path(directory)
    if not (path / CONFIG_FILE).is_file():
        raise UserError(f"{path}: not a NetLLM adapter (no {CONFIG_FILE})")
    config = json.loads((path / CONFIG_FILE).read_text())
    backbone, _ = load_base(config["base_model"], "lora")
    model = NetLLM(
        backbone,
        config["task"],
        config["horizon"],
        config["history"],
        config["rank"],
        config.get("action_tokens", True),
    )
    set_peft_model_state_dict(model.lm, load_file(str(path / "adapter_model.safetensors")))
    model.load_state_dict(load_file(str(path / HEADS_FILE)), strict=False)
    model.eval()
    return model, config
