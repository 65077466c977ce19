"""Helpers shared by the score-based baselines: deterministic ordering and dataset checks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.prepared import PreparedDataset


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
