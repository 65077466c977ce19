"""Zero-shot LLM ranker: registry wiring, rankings from a tiny model, and SmolLM2 end to end (slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from baselines.zero_shot import ZeroShotConfig, ZeroShotRanker
from flexbench.errors import FlexBenchError
from flexbench.llm.parsing import parse_ranking
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext, build_ranker
from flexbench.types import Instance
from flexbench.vocabulary import INTEREST, TREND


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_backend():
    from flexbench import paths
    from flexbench.llm.backends.transformers_backend import TransformersBackend
    from flexbench.llm.models import load_tokenizer, tiny_causal_lm

    tok = load_tokenizer("smollm2", cache_root=paths.cache_dir())
    return TransformersBackend(tiny_causal_lm(tok), tok, batch_size=3), tok


def test_registry_rows_build_without_loading_a_model(mock_dataset: PreparedDataset) -> None:
    ctx = RankerContext(mock_dataset, seed=1, options={"model": "some/model", "max_new_tokens": "64"})
    free = build_ranker("zero-shot", ctx)
    constrained = build_ranker("zero-shot-constrained", ctx)
    assert (free.name, constrained.name) == ("zero-shot", "zero-shot-constrained")
    assert isinstance(free, ZeroShotRanker) and not free.config.constrained and constrained.config.constrained
    assert free.config.max_new_tokens == 64 and free.model == "some/model"
    with pytest.raises(FlexBenchError, match="max_new_tokens"):
        ZeroShotRanker(RankerContext(mock_dataset, options={"max_new_tokens": "many"}))
    with pytest.raises(FlexBenchError, match="backend"):
        ZeroShotRanker(RankerContext(mock_dataset, options={"backend": "llama.cpp"}))
    assert ZeroShotConfig().model == "smollm2"


@pytest.mark.parametrize("constrained", [False, True])
def test_rankings_carry_emitted_ids_raw_output_and_prompt(mock_dataset: PreparedDataset, tiny_backend,
                                                          constrained: bool) -> None:
    backend, tok = tiny_backend
    instances = mock_dataset.instances("test", limit=4)
    ctx = RankerContext(mock_dataset, seed=2, options={"constrained": constrained, "max_new_tokens": 12})
    ranker = ZeroShotRanker(ctx, backend=backend, tokenizer=tok)
    rankings = ranker.rank(instances, TREND)
    assert [r.instance_id for r in rankings] == [x.instance_id for x in instances]
    for x, r in zip(instances, rankings, strict=True):
        assert r.raw_output is not None and r.prompt is not None and "<|im_start|>" in r.prompt
        assert r.item_ids == parse_ranking(r.raw_output, x.candidate_ids).emitted_ids
        if constrained:
            assert r.parsed and sorted(r.item_ids) == sorted(x.candidate_ids)
    assert ranker.rank(instances, TREND) == rankings  # greedy: deterministic
    assert ranker.rank([], TREND) == []


def _invalid_rate(rankings, instances: list[Instance]) -> float:
    emitted = sum(len(r.item_ids) for r in rankings)
    invalid = sum(sum(i not in x.candidate_ids for i in r.item_ids) for r, x in zip(rankings, instances))
    return invalid / max(emitted, 1)


@pytest.mark.slow
def test_smollm2_ranks_the_mock_dataset_end_to_end(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    """SmolLM2-135M-Instruct on CPU: free-form and constrained, 2 instances each."""
    from flexbench import paths

    cache = paths.cache_dir() if (paths.cache_dir() / "models" / "smollm2").exists() else tmp_path
    instances = mock_dataset.instances("test", limit=2)
    free = ZeroShotRanker(RankerContext(mock_dataset, options={"max_new_tokens": 48, "progress": False},
                                        cache_dir=cache))
    rankings = free.rank(instances, INTEREST)
    assert all(r.raw_output for r in rankings)
    constrained = ZeroShotRanker(RankerContext(mock_dataset, options={"constrained": True, "progress": False},
                                               cache_dir=cache), backend=free._backend, tokenizer=free._tokenizer)
    for x, r in zip(instances, constrained.rank(instances, INTEREST), strict=True):
        assert r.parsed and sorted(r.item_ids) == sorted(x.candidate_ids)
    print(f"free-form invalid-ID rate: {_invalid_rate(rankings, instances):.2f}")
