"""Small-LM routers: the embedded SmolLM2-135M tuned on routing labels (EllieSQL's best router
was a 0.5B model tuned this way).

- `SLMRouter` (kind "slm"): LoRA adapters on the LM plus a 2-class linear head on the last
  token's final hidden state, fine-tuned (SFT) with class-balanced cross-entropy on the labels;
  score = P(strong needed).
- `DPORouter` (kind "dpo"): the LM with LoRA tuned by trl's `DPOTrainer` to answer "strong"
  rather than "weak" (or the reverse, following the label) to a routing question about the
  request; score = P(strong) / (P(strong) + P(weak)), each the whole answer's probability.

Both save to a folder (`router.json`, the peft adapter, the head) and load back to identical
decisions; the base model is named in `router.json` and loaded offline like any local model.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm_eff.core.errors import UserError
from routers.base import request_text

STRONG, WEAK = " strong", " weak"
ROUTE_QUESTION = (
    "Should this request go to the strong model or to the weak one? Answer strong or weak.\n\n"
    "Request:\n{text}"
)


def _load_lm(base: str) -> tuple[Any, Any]:
    from llm_eff.backends.transformers_backend import load_local
    from llm_eff.models import parse_model

    model, tokenizer = load_local(parse_model(base))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer


def _lora_config(model: Any, rank: int) -> Any:
    from llm_eff.peft.config import MethodConfig
    from llm_eff.peft.lora import lora_config

    return lora_config(model, MethodConfig("lora", rank=rank, alpha=2 * rank))


def _check(texts: list[str], labels: np.ndarray) -> None:
    if len(texts) == 0 or len(texts) != len(labels):
        raise UserError("small-LM router: needs as many labels as texts, and at least one")
    if len(set(labels.tolist())) < 2:
        raise UserError("small-LM router: the labels hold one class only; nothing to separate")


@dataclass
class _SmallLMRouter:
    """What both small-LM routers share: settings, scoring in batches, save and load."""

    kind = ""
    name: str = ""
    base: str = "smollm2-135m"
    epochs: int = 1
    lr: float = 5e-4
    batch_size: int = 8
    max_length: int = 192
    rank: int = 8
    seed: int = 0
    _lm: Any = field(default=None, init=False, repr=False)
    _tokenizer: Any = field(default=None, init=False, repr=False)

    def _batch_scores(self, texts: list[str]) -> Any:
        raise NotImplementedError

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """P(strong needed) for many texts."""
        import torch

        if self._lm is None:
            raise UserError(f"{self.kind} router: not trained or loaded")
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths pad less
        scores = np.zeros(len(texts))
        with torch.no_grad():
            for i in range(0, len(texts), 16):
                rows = order[i : i + 16]
                scores[rows] = self._batch_scores([texts[j] for j in rows]).float().numpy()
        return scores

    def score(self, request: dict[str, Any] | str) -> float:
        """Score one request."""
        return float(self.score_texts([request_text(request)])[0])

    def _save_extra(self, folder: Path) -> None:
        pass

    def _load_extra(self, folder: Path, hidden_size: int) -> None:
        pass

    def save(self, folder: str | Path) -> Path:
        """Write router.json and the adapter (and any head) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._lm.save_pretrained(folder / "adapter")
        self._save_extra(folder)
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        (folder / "router.json").write_text(json.dumps({"kind": self.kind, **params}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, meta: dict[str, Any]) -> Any:
        """The router saved in `folder` (meta: its router.json without 'kind')."""
        from peft import PeftModel

        router = cls(**meta)
        model, router._tokenizer = _load_lm(router.base)
        router._lm = PeftModel.from_pretrained(model, str(Path(folder) / "adapter")).eval()
        router._load_extra(Path(folder), model.config.hidden_size)
        return router


@dataclass
class SLMRouter(_SmallLMRouter):
    """LoRA + linear head on a small LM, trained with cross-entropy (see module docstring)."""

    kind = "slm"
    name: str = "slm"
    epochs: int = 2
    _head: Any = field(default=None, init=False, repr=False)

    def _logits(self, texts: list[str]) -> Any:
        enc = self._tokenizer(
            texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        )
        out = self._lm(**enc, output_hidden_states=True, logits_to_keep=1)
        return self._head(out.hidden_states[-1][:, -1].float())

    def _batch_scores(self, texts: list[str]) -> Any:
        return self._logits(texts).softmax(-1)[:, 1]

    def fit(self, texts: list[str], labels: np.ndarray) -> SLMRouter:
        """Fine-tune LoRA and head on (text, label) pairs, label 1 = strong needed."""
        import torch
        from peft import get_peft_model

        labels = np.asarray(labels, dtype=np.int64)
        _check(texts, labels)
        model, self._tokenizer = _load_lm(self.base)
        torch.manual_seed(self.seed)
        self._lm = get_peft_model(model, _lora_config(model, self.rank))
        self._head = torch.nn.Linear(model.config.hidden_size, 2)
        params = [p for p in self._lm.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW([*params, *self._head.parameters()], lr=self.lr)
        counts = np.bincount(labels, minlength=2)
        weights = torch.tensor(len(labels) / (2 * np.maximum(counts, 1)), dtype=torch.float32)
        order = list(range(len(texts)))
        rng = random.Random(self.seed)
        self._lm.train()
        for _ in range(self.epochs):
            rng.shuffle(order)
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                logits = self._logits([texts[i] for i in idx])
                target = torch.from_numpy(labels[idx])
                loss = torch.nn.functional.cross_entropy(logits, target, weight=weights)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        self._lm.eval()
        return self

    def _save_extra(self, folder: Path) -> None:
        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in self._head.state_dict().items()}
        save_file(state, folder / "head.safetensors")

    def _load_extra(self, folder: Path, hidden_size: int) -> None:
        import torch
        from safetensors.torch import load_file

        self._head = torch.nn.Linear(hidden_size, 2)
        self._head.load_state_dict(load_file(folder / "head.safetensors"))


@dataclass
class DPORouter(_SmallLMRouter):
    """LoRA on a small LM, tuned with trl's DPOTrainer to answer strong/weak (module docstring)."""

    kind = "dpo"
    name: str = "dpo"
    lr: float = 5e-5
    max_length: int = 256
    beta: float = 0.1

    def _prompt(self, text: str) -> str:
        question = ROUTE_QUESTION.format(text=text[: self.max_length * 3])
        if self._tokenizer.chat_template:
            return self._tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
            )
        return question + "\nAnswer:"

    def _answer_logprobs(self, prompts: list[str], answer: str) -> Any:
        """Summed log-probability of `answer` after each prompt (teacher forcing)."""
        import torch

        tail = self._tokenizer(answer, add_special_tokens=False)["input_ids"]
        rows = [self._tokenizer(p, add_special_tokens=False)["input_ids"] + tail for p in prompts]
        width = max(map(len, rows))
        pad = self._tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        keep = len(tail) + 1  # only the positions that predict the answer's tokens
        logits = self._lm(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
        picked = logits.float().log_softmax(-1).gather(-1, ids[:, -len(tail) :, None])
        return picked.squeeze(-1).sum(-1)

    def _batch_scores(self, texts: list[str]) -> Any:
        import torch

        prompts = [self._prompt(t) for t in texts]
        margin = self._answer_logprobs(prompts, STRONG) - self._answer_logprobs(prompts, WEAK)
        return torch.sigmoid(margin)

    def fit(
        self, texts: list[str], labels: np.ndarray, out_dir: str | Path | None = None
    ) -> DPORouter:
        """Preference-tune on pairs: the right answer (label 1 -> strong) over the wrong one.
        trl's files and the adapter go to `out_dir` (a temporary folder when None)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="llm-eff-dpo-") as scratch:
            return self._fit(texts, labels, Path(out_dir or scratch))

    def _fit(self, texts: list[str], labels: np.ndarray, out_dir: Path) -> DPORouter:
        import torch
        from datasets import Dataset
        from transformers.utils import logging as hf_logging
        from trl import DPOConfig, DPOTrainer

        labels = np.asarray(labels, dtype=np.int64)
        _check(texts, labels)
        model, self._tokenizer = _load_lm(self.base)
        rows = {"prompt": [], "chosen": [], "rejected": []}
        for text, label in zip(texts, labels.tolist(), strict=True):
            rows["prompt"].append(self._prompt(text))
            rows["chosen"].append(STRONG if label else WEAK)
            rows["rejected"].append(WEAK if label else STRONG)
        args = DPOConfig(
            output_dir=str(out_dir / "trl"),
            per_device_train_batch_size=self.batch_size,
            num_train_epochs=self.epochs,
            learning_rate=self.lr,
            beta=self.beta,
            max_length=self.max_length,
            logging_steps=10,
            save_strategy="no",
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            seed=self.seed,
            disable_tqdm=True,
        )
        hf_logging.set_verbosity_error()
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(rows),
            processing_class=self._tokenizer,
            peft_config=_lora_config(model, self.rank),
        )
        trainer.train()
        # reopen the adapter on a fresh base, so a trained router and a loaded one are the same
        trainer.model.save_pretrained(out_dir / "adapter")
        from peft import PeftModel

        base, _ = _load_lm(self.base)
        self._lm = PeftModel.from_pretrained(base, str(out_dir / "adapter")).eval()
        return self


SMALL_LM = {"slm": SLMRouter, "dpo": DPORouter}
