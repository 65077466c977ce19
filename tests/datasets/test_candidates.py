"""Candidate rules and the stored order: popularity bins, popularity-matched fillers, the hash order."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.datasets.candidates import FillerRule, future_rated_candidates, popularity_bins
from flexbench.instances import permute_rows, storage_key, storage_order


def test_popularity_bins_hold_equal_rating_mass_and_ties_share_a_bin() -> None:
    # counts 0, 0, 1, 1, 2, 6 (total 10): M(< p) = 0, 0, 0, 0, 2, 4 -> 2 bins: floor(2 * M / 10)
    assert popularity_bins(np.array([6, 0, 1, 2, 1, 0]), 2).tolist() == [0, 0, 0, 0, 0, 0]
    assert popularity_bins(np.array([6, 0, 1, 2, 1, 0]), 5).tolist() == [2, 0, 0, 1, 0, 0]
    assert popularity_bins(np.array([1, 1, 1, 1]), 4).tolist() == [0, 0, 0, 0]
    assert popularity_bins(np.zeros(3), 10).tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        popularity_bins(np.ones(3), 0)


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # 8 items; the user rated 0 and 1 at or after the anchor (position 2, 3), 2 before it (position 0).
    scores = np.array([[0.50, 0.40, 0.90, 0.95, 0.94, 0.93, 0.30, 0.20]])
    position = np.array([[2, 3, 0, -1, -1, -1, -1, -1]])
    return scores, position, np.array([2])


def test_top_retrieved_fills_with_the_best_unrated_items() -> None:
    scores, position, anchor = _case()
    out = future_rated_candidates(scores, position, anchor, k=4, n_future=10, rule=FillerRule.TOP_RETRIEVED)
    assert out.tolist() == [[3, 4, 0, 1]]        # fillers 3, 4 (best unrated), rated 0, 1; retriever order


def test_popularity_matched_fillers_follow_the_rated_items_bins() -> None:
    scores, position, anchor = _case()
    bins = np.array([2, 0, 1, 1, 1, 0, 2, 0])    # rated items: bins 2 and 0
    out = future_rated_candidates(scores, position, anchor, k=4, n_future=10,
                                  rule=FillerRule.POPULARITY_MATCHED, bins=bins)
    # bin 2 -> best unrated of bin 2 is item 6; bin 0 -> item 5 (0.93) before 7
    assert out.tolist() == [[5, 0, 1, 6]]
    # two slots per rated bin; bin 2 holds one unrated item, its second slot takes the nearest bin (1: item 3)
    out = future_rated_candidates(scores, position, anchor, k=6, n_future=10,
                                  rule=FillerRule.POPULARITY_MATCHED, bins=bins)
    assert sorted(out[0].tolist()) == [0, 1, 3, 5, 6, 7]
    # one bin equals the top-retrieved rule
    one = future_rated_candidates(scores, position, anchor, k=4, n_future=10,
                                  rule=FillerRule.POPULARITY_MATCHED, bins=np.zeros(8, dtype=np.int64))
    assert one.tolist() == future_rated_candidates(scores, position, anchor, k=4, n_future=10,
                                                   rule=FillerRule.TOP_RETRIEVED).tolist()


def test_future_rule_needs_enough_unrated_items() -> None:
    scores, position, anchor = _case()
    with pytest.raises(ValueError, match="unrated"):
        future_rated_candidates(scores, position, anchor, k=8, n_future=10, rule=FillerRule.TOP_RETRIEVED)


def test_storage_order_depends_only_on_seed_instance_and_item() -> None:
    items = np.array([["a", "b", "c", "d"], ["d", "c", "b", "a"]])
    order = storage_order(["x", "x"], items, seed=0)
    first, second = permute_rows(items, order)
    assert first.tolist() == second.tolist()                         # input order does not matter
    assert first.tolist() == sorted("abcd", key=lambda i: storage_key(0, "x", i))
    orders = {tuple(permute_rows(items[:1], storage_order([f"x{s}"], items[:1], seed=s))[0]) for s in range(20)}
    assert len(orders) > 5                                           # seeds and instances reshuffle
