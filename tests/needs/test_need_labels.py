"""Need label constructors against hand-computed values (SPEC section 3)."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.errors import FlexBenchError
from needs.esci import GRADES, esci_gains, esci_labels
from needs.interest import interest_labels, rating_gains, watch_ratio_gains
from needs.labels import minmax_rows
from needs.novelty import BETA, niche_mask, novelty_gains, novelty_labels
from needs.trend import ALPHA, WINDOW_S, TrafficIndex, trend_gains, trend_labels


def test_interest_kuairec_reads_dense_watch_ratio_and_zero_for_missing_cells() -> None:
    dense = np.array([[0.5, np.nan, 2.0], [1.0, 0.1, 0.0]], dtype=np.float32)
    gains = watch_ratio_gains(dense, np.array([0, 1]), np.array([[2, 1, 0], [0, 1, 2]]))
    np.testing.assert_allclose(gains, [[2.0, 0.0, 0.5], [1.0, 0.1, 0.0]], rtol=1e-6)


def test_interest_ml1m_is_two_to_the_rating_minus_one() -> None:
    np.testing.assert_allclose(rating_gains(np.array([[5, 1, 0, np.nan, 3]])), [[31, 1, 0, 0, 7]])
    labels = interest_labels(["x"], [("a", "b", "c", "d", "e", "f")], rating_gains(np.array([[5, 4, 4, 0, 1, 2]])))
    assert labels[0].gains == (31.0, 15.0, 15.0, 0.0, 1.0, 3.0)
    assert labels[0].relevant == frozenset({"a", "b", "c", "e", "f"})   # top 5 with gain > 0


def test_novelty_bonus_doubles_niche_items_with_default_beta() -> None:
    assert BETA == 1.0
    topics = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1]], dtype=bool)
    history = np.array([[-1, 0]])                 # history has topic 0 only
    cands = np.array([[1, 2, 3, 4]])              # topic 1 (niche), 2 (niche), none (non-niche), {0,2} (seen)
    niche = niche_mask(topics, history, cands)
    assert niche.tolist() == [[True, True, False, False]]
    sims = np.array([[0.9, 0.5, 0.7, 0.1]])       # minmax -> 1, .5, .75, 0
    gains = novelty_gains(sims, niche)
    np.testing.assert_allclose(gains, [[2.0, 1.0, 0.75, 0.0]])
    lab = novelty_labels(["i"], [("b", "c", "d", "e")], gains)[0]
    assert lab.relevant == frozenset({"b", "c", "d"})


def test_trend_counts_use_the_half_open_24h_window_before_query_time() -> None:
    t = 1_600_000_000
    items = np.array([0, 0, 0, 1, 1, 2])
    times = np.array([t - WINDOW_S, t - 1, t, t - WINDOW_S - 1, t - 10, t - 5])
    counts = TrafficIndex(items, times).counts(np.array([[0, 1, 2, 3]]), np.array([t]))
    assert counts.tolist() == [[2, 1, 1, 0]]      # t - 24h counts, t itself does not


def test_trend_mix_with_default_alpha() -> None:
    assert ALPHA == 0.5
    sims = np.array([[0.2, 0.6, 1.0]])            # minmax 0, .5, 1
    counts = np.array([[10, 0, 5]])               # minmax 1, 0, .5
    gains = trend_gains(sims, counts)
    np.testing.assert_allclose(gains, [[0.5, 0.25, 0.75]])
    lab = trend_labels(["i"], [("x", "y", "z")], gains)[0]
    np.testing.assert_allclose(lab.gains, (0.5, 0.25, 0.75))
    np.testing.assert_allclose(trend_gains(sims, counts, alpha=1.0), minmax_rows(sims))


def test_constant_rows_normalise_to_zero() -> None:
    np.testing.assert_allclose(minmax_rows(np.array([[3.0, 3.0], [1.0, 2.0]])), [[0, 0], [0, 1]])


def test_esci_grades_and_exact_relevant_set() -> None:
    assert GRADES == {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
    np.testing.assert_allclose(esci_gains(["E", "S", "C", "I"]), [1.0, 0.1, 0.01, 0.0])
    lab = esci_labels(["q"], [("p1", "p2", "p3", "p4")], [("S", "E", "I", "E")])[0]
    assert lab.gains == (0.1, 1.0, 0.0, 1.0)
    assert lab.relevant == frozenset({"p2", "p4"})
    with pytest.raises(FlexBenchError, match="unknown ESCI label 'X'"):
        esci_gains(["X"])


def test_parameter_validation() -> None:
    with pytest.raises(ValueError):
        novelty_gains(np.zeros((1, 2)), np.zeros((1, 2), bool), beta=-1)
    with pytest.raises(ValueError):
        trend_gains(np.zeros((1, 2)), np.zeros((1, 2)), alpha=2)


def test_v2_needs_take_the_interest_gain_as_relevance() -> None:
    interest = np.array([[0.0, 31.0, 7.0, 1.0]])      # ML-1M 2^r - 1: unrated, 5, 3, 1 -> minmax 0, 1, 7/31, 1/31
    niche = np.array([[True, False, True, False]])
    lab = novelty_labels(["i"], [("a", "b", "c", "d")], novelty_gains(interest, niche), need="novelty-v2")[0]
    assert lab.need == "novelty-v2"
    np.testing.assert_allclose(lab.gains, [0.0, 1.0, 2 * 7 / 31, 1 / 31])
    counts = np.array([[4, 0, 2, 0]])                  # minmax 1, 0, .5, 0
    lab = trend_labels(["i"], [("a", "b", "c", "d")], trend_gains(interest, counts), need="trend-v2")[0]
    np.testing.assert_allclose(lab.gains, [0.5, 0.5, 0.5 * 7 / 31 + 0.25, 0.5 / 31])
    with pytest.raises(ValueError, match="novelty"):
        novelty_labels(["i"], [("a",)], np.zeros((1, 1)), need="trend")
    with pytest.raises(ValueError, match="trend"):
        trend_labels(["i"], [("a",)], np.zeros((1, 1)), need="novelty-v2")


def test_v2_needs_prompt_like_the_paper_needs() -> None:
    from flexbench.vocabulary import DATASET_NEEDS, LABELLED_NEEDS, NEEDS

    for paper, v2 in (("novelty", "novelty-v2"), ("trend", "trend-v2")):
        a, b = NEEDS[paper], NEEDS[v2]
        assert (a.title, a.instruction, a.shows) == (b.title, b.instruction, b.shows)
    assert LABELLED_NEEDS["ml-1m"] == (*DATASET_NEEDS["ml-1m"], "novelty-v2", "trend-v2")
    assert LABELLED_NEEDS["esci"] == DATASET_NEEDS["esci"] == ("esci",)
