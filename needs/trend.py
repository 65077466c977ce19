"""Trend Promotion labels (SPEC section 3; paper Appendix B.3; docs/PROTOCOL.md).

    count(c) = #{ interactions with c by any user with  t_q - window <= t < t_q }   [window = 24 h]
    score(c) = alpha * minmax(rel(c)) + (1 - alpha) * minmax(count(c))              [alpha = 0.5]

min-max over the instance's candidates. Traffic: KuaiRec ``big_matrix`` (the
platform's natural traffic), ML-1M all ratings. Two needs differ in ``rel``:

* ``trend`` (the paper's protocol): ``rel(c) = cos(e_c, q)``, the retriever's
  similarity ("Candidate videos are first retrieved using embedding-based
  similarity ... Both the similarity scores and the one-day trend counts are
  independently normalized", Appendix B.3);
* ``trend-v2`` (better posed): ``rel(c)`` = the Maximizing Interest gain, so the
  personal half of the label is the user's own feedback, not the retriever's score.

The counts are stored per candidate at prepare time and shown in trend prompts
(:attr:`flexbench.types.Candidate.recent_count`). Relevant set:
:func:`needs.labels.relevant_set`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.types import NeedLabels
from needs.labels import minmax_rows, to_labels

NAME = "trend"
NAME_V2 = "trend-v2"
ALPHA = 0.5
WINDOW_S = 86_400


class TrafficIndex:
    """Interactions ``(item, time)`` sorted by the key ``item * 2^34 + time`` for O(log n) window counts."""

    SHIFT = np.int64(1 << 34)

    def __init__(self, items: np.ndarray, times: np.ndarray) -> None:
        times = np.asarray(times, dtype=np.int64)
        if len(times) and (times.min() < 0 or times.max() >= self.SHIFT):
            raise ValueError("times must be Unix seconds in [0, 2^34)")
        self._keys = np.sort(np.asarray(items, dtype=np.int64) * self.SHIFT + times)

    def counts(self, candidates: np.ndarray, query_time: np.ndarray, window: int = WINDOW_S) -> np.ndarray:
        """``[N, K]`` interactions with each candidate in ``[t_q - window, t_q)``."""
        base = candidates.astype(np.int64) * self.SHIFT
        t = np.asarray(query_time, dtype=np.int64)[:, None]
        hi = np.searchsorted(self._keys, base + t, side="left")
        lo = np.searchsorted(self._keys, base + t - window, side="left")
        return hi - lo


def trend_gains(relevance: np.ndarray, counts: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """``alpha * minmax(rel) + (1 - alpha) * minmax(count)``, row-wise."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return alpha * minmax_rows(relevance) + (1 - alpha) * minmax_rows(counts)


def trend_labels(instance_ids: Sequence[str], candidate_ids: Sequence[Sequence[str]],
                 gains: np.ndarray, need: str = NAME) -> list[NeedLabels]:
    """:class:`NeedLabels` of ``need`` (``trend`` or ``trend-v2``) from :func:`trend_gains`."""
    if need not in (NAME, NAME_V2):
        raise ValueError(f"need must be {NAME!r} or {NAME_V2!r}, got {need!r}")
    return to_labels(need, instance_ids, candidate_ids, gains)
