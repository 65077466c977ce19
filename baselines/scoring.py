"""Helpers shared by the score-based baselines: deterministic ordering, dataset checks, the random reference."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from flexbench.prepared import PreparedDataset
from flexbench.types import NeedLabels


def rank_by_score(item_ids: Sequence[str], scores: Sequence[float] | np.ndarray) -> tuple[str, ...]:
    """Item IDs by descending score; equal scores (``-inf`` included) by ascending item ID.

    Breaking ties by ID rather than by input order keeps a ranking independent of
    the retriever's candidate order, so equal-score rankers are reproducible.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(item_ids):
        raise ValueError(f"{len(scores)} scores for {len(item_ids)} items")
    order = np.lexsort((np.asarray(item_ids, dtype=str), -scores))
    return tuple(item_ids[i] for i in order)


def has_histories(dataset: PreparedDataset) -> bool:
    """Whether instances carry user histories (recommendation datasets) rather than queries (ESCI)."""
    first = dataset.instances(limit=1)
    return bool(first and first[0].history)


def expected_random_ndcg(labels: Iterable[NeedLabels], k: int = 10) -> float:
    """Mean exact expected NDCG@k of a uniformly random permutation of each instance's candidates.

    Each rank holds every candidate with probability 1/K, so
    ``E[DCG@k] = mean(g) * sum_{j<=min(k,K)} 1/log2(j+1)``, divided by the instance's IDCG@k
    (instances with IDCG@k = 0 count 0, as in :mod:`flexbench.metrics`).
    """
    values = []
    for lab in labels:
        gains = np.asarray(lab.gains, dtype=np.float64)
        d = 1.0 / np.log2(np.arange(2, min(k, len(gains)) + 2))
        ideal = np.sort(gains)[::-1][: len(d)] @ d
        values.append(0.0 if ideal == 0 else gains.mean() * d.sum() / ideal)
    return float(np.mean(values)) if values else 0.0
