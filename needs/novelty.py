"""Explore New Topics (relevant novelty) labels (SPEC section 3; paper Appendix B.2; docs/PROTOCOL.md).

For candidate ``c`` of an instance:

    base(c)  = minmax_over_candidates( rel(c) )
    niche(c) = c has at least one topic and none of its topics occurs in the history
    score(c) = base(c) * (1 + beta)  if niche(c)  else  base(c)          [beta = 1.0]

Two needs share the formula and differ in the relevance ``rel``:

* ``novelty`` (the paper's protocol): ``rel(c) = cos(e_c, q)``, the frozen
  retriever's similarity to the user query vector ("a base relevance score
  obtained via embedding-based retrieval", Appendix B.2). Ranking by the
  retriever's own score then nearly solves the need (issue 14).
* ``novelty-v2`` (better posed): ``rel(c)`` = the candidate's Maximizing Interest
  gain (KuaiRec dense watch ratio, ML-1M ``2^r - 1``, 0 unobserved): an item must
  be liked by the user, not merely close to the history in embedding space.

Topics: KuaiRec ``feat`` tags of ``item_categories.csv``; ML-1M genres. Items
without topics are never niche. Relevant set: :func:`needs.labels.relevant_set`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.types import NeedLabels
from needs.labels import minmax_rows, to_labels

NAME = "novelty"
NAME_V2 = "novelty-v2"
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


def novelty_gains(relevance: np.ndarray, niche: np.ndarray, beta: float = BETA) -> np.ndarray:
    """``minmax(rel) * (1 + beta)`` where niche, else ``minmax(rel)`` (row-wise over candidates)."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    base = minmax_rows(relevance)
    return np.where(niche, base * (1.0 + beta), base)


def novelty_labels(instance_ids: Sequence[str], candidate_ids: Sequence[Sequence[str]],
                   gains: np.ndarray, need: str = NAME) -> list[NeedLabels]:
    """:class:`NeedLabels` of ``need`` (``novelty`` or ``novelty-v2``) from :func:`novelty_gains`."""
    if need not in (NAME, NAME_V2):
        raise ValueError(f"need must be {NAME!r} or {NAME_V2!r}, got {need!r}")
    return to_labels(need, instance_ids, candidate_ids, gains)
