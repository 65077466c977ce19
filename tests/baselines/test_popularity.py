"""Popularity: training-interaction counts, ties by item ID, only training users counted."""

from __future__ import annotations

import pytest
from baseline_fixtures import history_instance, query_instance

from baselines.popularity import PopularityRanker
from flexbench.errors import FlexBenchError
from flexbench.ranker import RankerContext, RankerUnavailable, build_ranker
from flexbench.vocabulary import INTEREST, NOVELTY

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


ORGANIC = [("b1", "C", 0.5, 1, "train"), ("b1", "E", 0.9, 2, "train"), ("b2", "C", 2.0, 1, "train"),
           ("b9", "E", 1.0, 1, "valid")]  # a held-out user's row: never counted


def test_counts_the_organic_log_where_stored_and_observed_on_request(tiny_dataset) -> None:
    ds = tiny_dataset(EMB, INTERACTIONS, [history_instance("x", [("A", 1.0)], ["E", "D", "C", "B", "A"])],
                      organic=ORGANIC)
    auto = PopularityRanker(RankerContext(ds))
    assert auto.counts == {"C": 2, "E": 1} and auto.train_on == "organic"
    assert auto.rank(ds.instances(), INTEREST)[0].item_ids == ("C", "E", "A", "B", "D")
    observed = PopularityRanker(RankerContext(ds, options={"train_on": "observed"}))
    assert observed.counts == {"A": 2, "B": 2, "C": 1}
    plain = tiny_dataset(EMB, INTERACTIONS, [query_instance("q", ["A", "B"])], name="plain")
    with pytest.raises(FlexBenchError, match="no organic log"):
        PopularityRanker(RankerContext(plain, options={"train_on": "organic"}))
    with pytest.raises(FlexBenchError, match="train_on must be one of"):
        PopularityRanker(RankerContext(plain, options={"train_on": "big"}))
