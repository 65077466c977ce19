"""Shared helpers of the score-based baselines: tie-breaking and the exact random-ranker reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from baselines.scoring import expected_random_ndcg, positive_history, rank_by_score
from flexbench.metrics import mean_metrics, score_rankings
from flexbench.types import HistoryItem, NeedLabels


def test_rank_by_score_breaks_ties_by_id() -> None:
    assert rank_by_score(["c", "a", "b", "d"], [1.0, 1.0, 2.0, float("-inf")]) == ("b", "a", "c", "d")
    assert rank_by_score(["z", "y"], [float("-inf"), float("-inf")]) == ("y", "z")
    with pytest.raises(ValueError):
        rank_by_score(["a"], [1.0, 2.0])


def test_expected_random_ndcg_equals_mean_over_all_permutations() -> None:
    ids = ("a", "b", "c", "d", "e")
    labels = NeedLabels("x", "interest", ids, (3.0, 0.0, 1.0, 0.5, 0.0), frozenset({"a"}))
    for k, metric in ((10, "ndcg@10"), (5, "ndcg@5")):
        exact = mean_metrics(score_rankings(list(itertools.permutations(ids)), [labels] * 120))[metric]
        assert expected_random_ndcg([labels], k=k) == pytest.approx(exact, abs=1e-12)
    zero = NeedLabels("z", "interest", ids, (0.0,) * 5, frozenset())
    assert expected_random_ndcg([zero]) == 0.0 and np.isclose(expected_random_ndcg([]), 0.0)


def test_positive_history_keeps_engaged_items_in_order() -> None:
    history = [HistoryItem(i, i, e, n) for n, (i, e) in enumerate([("a", 0.4), ("b", 1.0), ("c", 2.5), ("d", 0.99)])]
    assert positive_history(history, 1.0) == ["b", "c"]
    assert positive_history(history, None) == ["a", "b", "c", "d"]
    assert positive_history(history, 3.0) == []
