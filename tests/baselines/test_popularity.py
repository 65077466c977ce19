"""Popularity: training-interaction counts, ties by item ID, only training users counted."""

from __future__ import annotations

import pytest
from baseline_fixtures import history_instance, query_instance

from baselines.popularity import PopularityRanker
from flexbench.ranker import RankerContext, RankerUnavailable, build_ranker
from needs.base import INTEREST, NOVELTY

EMB = {i: (1.0, 0.0) for i in "ABCDE"}
# Training counts: A 2, B 2, C 1; D only by a valid user (counts 0, like E which nobody saw).
INTERACTIONS = [("u1", "A", 1.0, 1, "train"), ("u2", "A", 1.0, 1, "train"), ("u1", "B", 1.0, 2, "train"),
                ("u3", "B", 1.0, 1, "train"), ("u3", "C", 1.0, 2, "train"),
                ("u9", "D", 1.0, 1, "valid"), ("u9", "D", 1.0, 2, "valid"), ("u8", "D", 1.0, 1, "test")]


def test_counts_training_interactions_with_ties_by_id(tiny_dataset) -> None:
    ds = tiny_dataset(EMB, INTERACTIONS, [history_instance("x", [("A", 1.0)], ["E", "D", "C", "B", "A"])])
    ranker = PopularityRanker(RankerContext(ds))
    assert ranker.counts == {"A": 2, "B": 2, "C": 1}
    [ranking] = ranker.rank(ds.instances(), INTEREST)
    assert ranking.item_ids == ("A", "B", "C", "D", "E")
    assert ranking.raw_output is None


def test_need_agnostic_deterministic_in_input_order(mock_dataset) -> None:
    instances = mock_dataset.instances("valid")
    ranker = build_ranker("popularity", RankerContext(mock_dataset))
    first = ranker.rank(instances, INTEREST)
    assert [r.instance_id for r in first] == [x.instance_id for x in instances]
    assert first == ranker.rank(instances, NOVELTY)
    counts = mock_dataset.interactions("train")["item_id"].value_counts()
    for r in first:
        scores = [counts.get(i, 0) for i in r.item_ids]
        assert scores == sorted(scores, reverse=True)


def test_unavailable_without_training_interactions(tiny_dataset) -> None:
    ds = tiny_dataset(EMB, [("u9", "A", 1.0, 1, "valid")], [query_instance("q", ["A", "B"])])
    with pytest.raises(RankerUnavailable, match="no"):
        PopularityRanker(RankerContext(ds))
