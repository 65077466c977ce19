"""Conformance of the whole ranker registry (STYLE pattern 2).

Each entry must import, be callable, and on the mock dataset either build a
:class:`Ranker` that returns one valid :class:`Ranking` per instance, in input
order, or raise :class:`RankerUnavailable` with a reason. Local-LLM entries load
a model, so their build-and-rank check is marked slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flexbench.prepared import PreparedDataset
from flexbench.ranker import (
    REGISTRY,
    Ranker,
    RankerContext,
    RankerKind,
    RankerUnavailable,
    build_ranker,
    get_entry,
)
from flexbench.types import Ranking
from flexbench.vocabulary import get_need

SCORE_BASED = {RankerKind.REFERENCE, RankerKind.ORACLE, RankerKind.CLASSIC}


LOCAL_LLM_MODULES = ("baselines.zero_shot:",)  # build loads a local model: minutes on CPU


def _params() -> list:
    return [pytest.param(name, marks=[pytest.mark.slow] if e.target.startswith(LOCAL_LLM_MODULES) else [],
                         id=name) for name, e in REGISTRY.items()]


def test_names_are_unique_and_match_their_rows() -> None:
    assert all(name == entry.name for name, entry in REGISTRY.items())
    assert len({name.lower() for name in REGISTRY}) == len(REGISTRY)
    assert all(entry.description.strip() for entry in REGISTRY.values())


@pytest.mark.parametrize("name", list(REGISTRY))
def test_target_imports_and_is_callable(name: str) -> None:
    assert callable(REGISTRY[name].load())


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(Exception, match="Did you mean 'oracle-trend'"):
        get_entry("oracle-trnd")


@pytest.mark.parametrize("name", _params())
def test_entry_conforms_on_mock(name: str, mock_dataset: PreparedDataset, data_root: Path) -> None:
    ctx = RankerContext(mock_dataset, seed=0, options={}, cache_dir=data_root / "cache")
    try:
        ranker = build_ranker(name, ctx)
    except RankerUnavailable as err:
        assert str(err).strip(), f"{name}: RankerUnavailable needs a reason"
        return
    assert isinstance(ranker, Ranker) and isinstance(ranker.name, str) and ranker.name
    xs = mock_dataset.instances("test")[:3]
    rankings = ranker.rank(xs, get_need("interest"))
    assert len(rankings) == len(xs)
    for x, r in zip(xs, rankings, strict=True):
        assert isinstance(r, Ranking) and r.instance_id == x.instance_id
        assert all(isinstance(i, str) for i in r.item_ids)
        if REGISTRY[name].kind in SCORE_BASED:
            assert sorted(r.item_ids) == sorted(x.candidate_ids), f"{name} must return a full permutation"
    assert ranker.rank(xs, get_need("interest")) == rankings or REGISTRY[name].kind not in SCORE_BASED


def test_every_built_in_ranker_declares_the_hooks_through_ranker_base() -> None:
    import inspect

    from flexbench.ranker import RankerBase

    for name, entry in REGISTRY.items():
        factory = entry.load()
        if inspect.isclass(factory):
            assert issubclass(factory, RankerBase), f"{name}: built-in rankers inherit RankerBase's hooks"


def test_a_minimal_ranker_gets_the_default_hooks(mock_dataset: PreparedDataset) -> None:
    from flexbench.ranker import as_ranker

    class Minimal:
        name = "minimal"

        def rank(self, instances, need):
            return [Ranking(x.instance_id, x.candidate_ids) for x in instances]

    ranker = as_ranker(Minimal(), "test")
    assert isinstance(ranker, Ranker) and ranker.name == "minimal"
    assert ranker.check_available("interest") is None and dict(ranker.provenance("interest")) == {}
    xs = mock_dataset.instances("test")[:2]
    assert [r.item_ids for r in ranker.rank(xs, get_need("interest"))] == [x.candidate_ids for x in xs]
    with pytest.raises(TypeError, match="no `name` and `rank"):
        as_ranker(object(), "test")


def test_options_a_ranker_does_not_read_are_refused(mock_dataset: PreparedDataset, data_root: Path) -> None:
    from flexbench.errors import FlexBenchError

    def build(name: str, **options: object) -> Ranker:
        return build_ranker(name, RankerContext(mock_dataset, options=options, cache_dir=data_root / "cache"))

    with pytest.raises(FlexBenchError, match="ranker 'random' does not take option 'model'.*takes: no options"):
        build("random", model="smollm2")
    with pytest.raises(FlexBenchError, match="Did you mean 'decay'"):
        build("star", decayy=0.5)
    assert build("star", decay=0.5, label="star-decay").name == "star"
    assert build("random", label="random-2").name == "random"
    for name, entry in REGISTRY.items():
        known = entry.accepted_options()
        assert known is not None and "label" in known, name
