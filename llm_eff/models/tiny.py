"""Tiny random Llama models built in code, for tests and examples that need no trained model.

The tokenizer is a byte-level BPE trained in a second on a few sentences, with a chat template,
so the same code paths (chat formatting, batching, generation) run as with a real model.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "Write a Python function that returns the sum of a list of numbers.",
    "```python\nimport math\nclass Foo:\n    pass\n```",
    "The quick brown fox jumps over the lazy dog. 0123456789 ()[]{}:;,.'\"",
]


def tiny_tokenizer():  # noqa: ANN201 - returns a transformers PreTrainedTokenizerFast
    """A small byte-level BPE tokenizer (vocab ~400) with pad/eos tokens and a chat template."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    specials = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    bpe.train_from_iterator(_CORPUS * 4, vocab_size=400, min_frequency=1, special_tokens=specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        pad_token="<|pad|>",
        eos_token="<|end|>",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_llama(layers: int = 2, hidden: int = 64, seed: int = 0):  # noqa: ANN201
    """(model, tokenizer): a `layers`-layer random Llama and the tiny tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def save_tiny_llama(path: str | Path, layers: int = 2) -> Path:
    """Write a tiny random Llama and its tokenizer as an HF model dir at `path`."""
    model, tok = tiny_llama(layers)
    path = Path(path)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
