"""Helpers shared by the score-based baselines: deterministic ordering, dataset checks, training logs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset
from flexbench.types import HistoryItem, NeedLabels, Split

TRAIN_SOURCES = ("auto", "observed", "organic")


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


def resolve_train_source(dataset: PreparedDataset, train_on: str) -> str:
    """``observed`` or ``organic``: ``auto`` picks the organic log where one is stored (KuaiRec).

    The observed view (KuaiRec: the 10% sparse sample of the small matrix) is
    what SPEC section 5 names; on KuaiRec every small-matrix video was shown to
    every user, so its sequences carry no choice, while the big matrix records what
    users chose to watch (KuaiRec's own protocol trains there). See README, "Deviations".
    """
    if train_on not in TRAIN_SOURCES:
        raise FlexBenchError(f"train_on must be one of {', '.join(TRAIN_SOURCES)}, got {train_on!r}")
    if train_on == "auto":
        return "organic" if dataset.has_organic() else "observed"
    if train_on == "organic" and not dataset.has_organic():
        raise FlexBenchError(f"train_on=organic: dataset {dataset.name!r} stores no organic log "
                             f"(only KuaiRec's big matrix is one)")
    return train_on


def training_log(dataset: PreparedDataset, source: str) -> pd.DataFrame:
    """The ``split == "train"`` rows of ``source`` (``observed`` or ``organic``), in stored order."""
    if source != "organic":
        return dataset.interactions(Split.TRAIN)
    frame = dataset.organic_interactions()
    return frame[frame["split"] == Split.TRAIN.value].reset_index(drop=True)


def positive_history(history: Sequence[HistoryItem], min_engagement: float | None) -> list[str]:
    """IDs of the history items with ``engagement >= min_engagement`` (all when ``None``), oldest first."""
    return [h.item_id for h in history if min_engagement is None or h.engagement >= min_engagement]
