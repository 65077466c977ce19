"""Explore New Topics (relevant novelty) labels (SPEC section 3; paper Appendix B.2).

For candidate ``c`` of an instance with user query vector ``q``:

    base(c)  = minmax_over_candidates( cos(e_c, q) )
    niche(c) = c has at least one topic and none of its topics occurs in the history
    score(c) = base(c) * (1 + beta)  if niche(c)  else  base(c)          [beta = 1.0]

Topics: KuaiRec ``feat`` tags of ``item_categories.csv``; ML-1M genres. Items
without topics are never niche. Relevant set: :func:`needs.base.relevant_set`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.types import NeedLabels
from needs.labels import minmax_rows, to_labels

NAME = "novelty"
BETA = 1.0


def niche_mask(item_topics: np.ndarray, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``[N, K]`` bool: candidate has topics, none seen in the history.

    ``item_topics`` is a ``[n_items, n_topics]`` bool matrix; ``history`` is
    ``[N, L]`` item indices padded with -1.
    """
    padded = np.vstack([item_topics, np.zeros((1, item_topics.shape[1]), bool)])
    seen = padded[history].any(axis=1)                      # [N, T]; -1 -> the all-False pad row
    cand = item_topics[candidates]                          # [N, K, T]
    return cand.any(axis=2) & ~(cand & seen[:, None, :]).any(axis=2)


def novelty_gains(similarity: np.ndarray, niche: np.ndarray, beta: float = BETA) -> np.ndarray:
    """``minmax(sim) * (1 + beta)`` where niche, else ``minmax(sim)`` (row-wise over candidates)."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    base = minmax_rows(similarity)
    return np.where(niche, base * (1.0 + beta), base)


def novelty_labels(instance_ids: Sequence[str], candidate_ids: Sequence[Sequence[str]],
                   gains: np.ndarray) -> list[NeedLabels]:
    """Novelty :class:`NeedLabels` from :func:`novelty_gains`."""
    return to_labels(NAME, instance_ids, candidate_ids, gains)
