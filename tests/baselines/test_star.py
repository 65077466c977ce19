"""STAR: a hand-computed case, the l / train-split rules, query datasets, determinism, a win over random."""

from __future__ import annotations

import math

import numpy as np
import pytest
from baseline_fixtures import expected_random_ndcg10, history_instance, mean_ndcg10, query_instance

from baselines.star import QuerySTARScorer, STARConfig, STARRanker, build_scorer
from flexbench.embeddings import HashingEncoder
from flexbench.errors import FlexBenchError
from flexbench.ranker import RankerContext, RankerUnavailable, build_ranker
from flexbench.vocabulary import ESCI, INTEREST

# Embeddings (unit norm): cos_sem(C, A) = 0.6, (C, D) = 0.96, (C, B) = 0.8, (B, D) = 0.6, (E, B) = 1.
EMB = {"A": (1.0, 0.0), "B": (0.0, 1.0), "C": (0.6, 0.8), "D": (0.8, 0.6), "E": (0.0, 1.0)}
# Training users u1..u3 give binary vectors over (u1, u2, u3): A = (1,0,1), B = (0,1,0), C = (1,1,0),
# D = (0,0,1), E = 0. So cos_collab(C, A) = 1/2, (C, B) = 1/sqrt(2), (C, D) = 0, (B, B) = 1, E -> 0.
# The valid user u9 must not count (it would change cos_collab(C, B) and (C, D)).
INTERACTIONS = [("u1", "A", 1.0, 1, "train"), ("u1", "C", 1.0, 2, "train"), ("u2", "B", 1.0, 1, "train"),
                ("u2", "C", 1.0, 2, "train"), ("u3", "A", 1.0, 1, "train"), ("u3", "D", 1.0, 2, "train"),
                ("u9", "C", 1.0, 1, "valid"), ("u9", "D", 1.0, 2, "valid")]
# History oldest first: C (dropped: l = 3), B r=2 (t=2), D r=1 (t=1), A r=3 (t=0).
HISTORY = [("C", 5.0), ("B", 2.0), ("D", 1.0), ("A", 3.0)]


def _hand_scores() -> dict[str, float]:
    w_a, w_d, w_b = 3.0 * 0.7**0, 1.0 * 0.7**1, 2.0 * 0.7**2  # 3, 0.7, 0.98
    return {
        # (1/3) [3 (.5*.6 + .5*.5) + .7 (.5*.96 + 0) + .98 (.5*.8 + .5/sqrt 2)] = 0.90816077
        "C": (w_a * (0.5 * 0.6 + 0.5 * 0.5) + w_d * (0.5 * 0.96) + w_b * (0.5 * 0.8 + 0.5 / math.sqrt(2))) / 3,
        # (1/3) [0 + .7 (.5*.6 + 0) + .98 (.5*1 + .5*1)] = 0.39666667
        "B": (w_d * (0.5 * 0.6) + w_b * 1.0) / 3,
        # (1/3) [0 + .7 (.5*.6) + .98 (.5*1)] = 0.23333333 (E has no training interactions)
        "E": (w_d * (0.5 * 0.6) + w_b * 0.5) / 3,
    }


def test_scores_match_hand_computed_case(tiny_dataset) -> None:
    ds = tiny_dataset(EMB, INTERACTIONS, [history_instance("x", HISTORY, ["E", "B", "C"])])
    [instance] = ds.instances()
    scores = build_scorer(ds, STARConfig()).scores([instance])[0]
    expected = _hand_scores()
    assert scores == pytest.approx([expected[c] for c in instance.candidate_ids], abs=1e-6)
    assert expected["C"] == pytest.approx(0.90816077, abs=1e-8)
    ranking = STARRanker(RankerContext(ds)).rank([instance], INTEREST)[0]
    assert ranking.item_ids == ("C", "B", "E")


def test_short_history_uses_all_items_and_parameters_apply(tiny_dataset) -> None:
    ds = tiny_dataset(EMB, INTERACTIONS, [history_instance("x", [("A", 2.0)], ["C", "B"])])
    [instance] = ds.instances()
    # n = 1: score(C) = 2 * (.5 * .6 + .5 * .5) = 1.1; score(B) = 0.
    assert build_scorer(ds, STARConfig()).scores([instance])[0] == pytest.approx([1.1, 0.0])
    # a = 1: semantic only -> 2 * 0.6.
    assert build_scorer(ds, STARConfig(semantic_weight=1.0)).scores([instance])[0] == pytest.approx([1.2, 0.0])


def test_ties_broken_by_item_id(tiny_dataset) -> None:
    # B and E have equal embeddings and no shared users with the history item A: both score 0.
    ds = tiny_dataset(EMB, INTERACTIONS, [history_instance("x", [("A", 1.0)], ["E", "B"])])
    assert STARRanker(RankerContext(ds)).rank(ds.instances(), INTEREST)[0].item_ids == ("B", "E")


def test_query_star_is_the_query_product_cosine(tiny_dataset, tmp_path) -> None:
    """ESCI: no history, no collaborative term: score(c) = <e_c, e_q> with the dataset's encoder."""
    texts = {"A": "red running shoes nike", "B": "blue coffee maker", "C": "red shoes", "D": "running socks"}
    enc = HashingEncoder()
    emb = dict(zip(texts, enc.encode(list(texts.values())).tolist(), strict=True))
    ds = tiny_dataset(emb, [], [query_instance("q", ["B", "D", "A", "C"])], config={"encoder": "hash"})
    [instance] = ds.instances()
    ranker = STARRanker(RankerContext(ds, cache_dir=tmp_path))
    query = enc.encode(["red running shoes"])[0]
    expected = {c: float(np.dot(emb[c], query)) for c in texts}
    np.testing.assert_allclose(ranker.scorer.scores([instance])[0], [expected[c] for c in instance.candidate_ids],
                               atol=1e-6)
    ranking = ranker.rank([instance], ESCI)[0].item_ids
    assert ranking == tuple(sorted(texts, key=lambda c: (-expected[c], c))) and ranking[-1] == "B"
    assert isinstance(ranker.scorer, QuerySTARScorer)


def test_query_datasets_without_encoder_and_bad_options_are_refused(tiny_dataset) -> None:
    ds = tiny_dataset(EMB, INTERACTIONS, [query_instance("q", ["A", "B"])])
    with pytest.raises(RankerUnavailable, match="query dataset"):
        STARRanker(RankerContext(ds))
    with pytest.raises(FlexBenchError, match="decay"):
        STARConfig(decay=0.0)


def test_registered_deterministic_and_beats_random(mock_dataset) -> None:
    # On the mock, novelty labels follow embedding similarity to the history: STAR must see it.
    instances = mock_dataset.instances("test")
    first = build_ranker("star", RankerContext(mock_dataset, seed=0)).rank(instances, INTEREST)
    again = build_ranker("star", RankerContext(mock_dataset, seed=1)).rank(instances[::-1], INTEREST)
    assert [r.item_ids for r in first] == [r.item_ids for r in again[::-1]]
    assert all(sorted(r.item_ids) == sorted(x.candidate_ids) for r, x in zip(first, instances, strict=True))
    for need in ("novelty", "trend"):
        assert mean_ndcg10(mock_dataset, first, need, "test") > expected_random_ndcg10(mock_dataset, need, "test") + 0.05
