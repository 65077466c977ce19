"""Helpers of the baseline tests: instances, NDCG of rankings, the exact NDCG of a random ranker."""

from __future__ import annotations

from collections.abc import Sequence

from flexbench.prepared import PreparedDataset
from flexbench.types import Candidate, HistoryItem, Instance, Split


def history_instance(instance_id: str, history: Sequence[tuple[str, float]], candidates: Sequence[str],
                     split: Split = Split.TEST) -> Instance:
    """An instance with ``history`` as (item, engagement) pairs, oldest first."""
    return Instance(instance_id, "tiny", split, tuple(Candidate(c, f"item {c}") for c in candidates),
                    user_id=instance_id, history=tuple(HistoryItem(i, f"item {i}", e, 100 + n)
                                                       for n, (i, e) in enumerate(history)))


def query_instance(instance_id: str, candidates: Sequence[str]) -> Instance:
    """An ESCI-like instance: a query, no history."""
    return Instance(instance_id, "tiny", Split.TEST, tuple(Candidate(c, f"item {c}") for c in candidates),
                    query="red running shoes")


def mean_ndcg10(dataset: PreparedDataset, rankings: Sequence, need: str, split: str) -> float:
    """Mean NDCG@10 of ``rankings`` (objects with ``instance_id``, ``item_ids``) on ``need``'s labels."""
    from flexbench.metrics import mean_metrics, score_rankings

    labels = dataset.labels(need, split)
    return mean_metrics(score_rankings([r.item_ids for r in rankings],
                                       [labels[r.instance_id] for r in rankings]))["ndcg@10"]


def expected_random_ndcg10(dataset: PreparedDataset, need: str, split: str) -> float:
    """Exact expected NDCG@10 of a uniformly random permutation (see :func:`baselines.scoring.expected_random_ndcg`)."""
    from baselines.scoring import expected_random_ndcg

    return expected_random_ndcg(dataset.labels(need, split).values(), k=10)
