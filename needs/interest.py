"""Maximizing Interest labels (SPEC section 3; paper Appendix B.1).

* KuaiRec: ``gain = watch_ratio(u, c)`` from the dense ``small_matrix`` (the
  ratio of play time to video length); a cell missing from the matrix
  (0.4% of pairs) has gain 0.
* ML-1M: ``gain = 2^rating - 1`` for an observed rating of ``(u, c)``, 0 when
  ``u`` never rated ``c``.

Relevant set: :func:`needs.labels.relevant_set` (top 5 with gain > 0, ties by item ID).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.types import NeedLabels
from needs.labels import to_labels

NAME = "interest"


def watch_ratio_gains(dense: np.ndarray, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``dense[u, c]`` per candidate, NaN (missing cell) -> 0. ``dense`` is ``[n_users, n_items]``."""
    values = dense[users[:, None], candidates]
    return np.nan_to_num(values.astype(np.float64), nan=0.0)


def rating_gains(ratings: np.ndarray) -> np.ndarray:
    """``2^r - 1`` for observed ratings ``r`` in 1..5; 0 (or NaN) means unobserved -> gain 0."""
    r = np.nan_to_num(np.asarray(ratings, dtype=np.float64), nan=0.0)
    return np.where(r > 0, np.exp2(r) - 1.0, 0.0)


def interest_labels(instance_ids: Sequence[str], candidate_ids: Sequence[Sequence[str]],
                    gains: np.ndarray) -> list[NeedLabels]:
    """Interest :class:`NeedLabels` from the gains of :func:`watch_ratio_gains` or :func:`rating_gains`."""
    return to_labels(NAME, instance_ids, candidate_ids, gains)
