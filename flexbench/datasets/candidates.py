"""Candidate-set rules of the sequential datasets (SPEC section 2; paper Appendix D; docs/PROTOCOL.md).

``retrieve`` (KuaiRec): the top-K items by the frozen retriever's cosine to the
user query vector, history excluded.

``future-rated`` (ML-1M, a documented deviation): ratings are sparse, so the set
takes the user's future-rated items (rated at or after the anchor) that rank
highest under the retriever, up to ``ml_future`` (10), and fills the other
slots with items the user never rated. Items rated before the anchor but
outside the history window are never candidates. Two filler rules
(:class:`FillerRule`):

* ``top-retrieved`` (protocol 1): the top retrieved unrated items. On the
  official ML-1M files these are far less popular than the rated items, so
  popularity alone tells them apart (issue 14: popularity NDCG@5 0.562 on
  interest, above STAR 0.380) -- the sampled-negatives artefact.
* ``popularity-matched`` (protocol 2, default): every filler slot is given the
  popularity bin of one rated candidate (the rated candidates' bins, cycled),
  and takes the best-retrieved unrated item of that bin that is not taken yet
  (the nearest non-empty bin, lower first, when the bin runs out). Bins hold
  equal shares of the rating mass (:func:`popularity_bins`, 10 bins), counted
  over the training users' ratings: exactly what the ``popularity`` ranker counts.
  The fillers are then as popular as the rated items and still retrieved, hard
  negatives for any ranker.

The rules return candidate sets in retriever order; the stored order is the
seeded hash order of :func:`flexbench.instances.storage_order`.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from flexbench.retrieval import score_chunks, top_k


class FillerRule(StrEnum):
    """How ML-1M's unrated filler candidates are chosen (module docstring)."""

    TOP_RETRIEVED = "top-retrieved"
    POPULARITY_MATCHED = "popularity-matched"


def retrieve_candidates(queries: np.ndarray, emb: np.ndarray, hist: np.ndarray, k: int) -> np.ndarray:
    """``[N, k]`` top retrieved item indices per query, history (``hist``, -1 padded) excluded."""
    cands = np.empty((len(queries), k), dtype=np.int64)
    for start, scores in score_chunks(queries, emb):
        cands[start:start + len(scores)] = top_k(scores, k, hist[start:start + len(scores)])
    return cands


def popularity_bins(popularity: np.ndarray, n_bins: int) -> np.ndarray:
    """Popularity bin (0 = least popular) of every item: ``n_bins`` bins of equal rating mass.

    ``bin(i) = floor(n_bins * M(< p_i) / M)`` where ``p_i`` is item ``i``'s count, ``M``
    the total count and ``M(< p)`` the count of all items strictly less popular than
    ``p``: items of equal count share a bin, and the bins are narrow at the popular
    head, where rated items concentrate (10 bins on the ML-1M sample: the top bin holds
    the 12 most rated of 600 movies, the bottom bin the 200 least rated).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    pop = np.asarray(popularity, dtype=np.float64)
    total = pop.sum()
    if total <= 0:
        return np.zeros(len(pop), dtype=np.int64)
    uniq, inverse = np.unique(pop, return_inverse=True)
    mass = uniq * np.bincount(inverse, minlength=len(uniq))
    below = np.concatenate([[0.0], np.cumsum(mass)[:-1]])   # M(< p) for each distinct count
    return np.minimum((n_bins * below / total).astype(np.int64), n_bins - 1)[inverse]


def future_rated_candidates(scores: np.ndarray, position: np.ndarray, anchor_pos: np.ndarray, k: int,
                            n_future: int, rule: FillerRule, bins: np.ndarray | None = None) -> np.ndarray:
    """``[N, k]`` candidates of the future-rated rule (module docstring), in retriever order.

    ``scores`` ``[N, n_items]`` retriever cosines; ``position`` ``[N, n_items]`` each item's
    position in the user's time-ordered ratings (-1 never rated); ``anchor_pos`` ``[N]``;
    ``bins`` the items' popularity bins (``popularity-matched`` only).
    """
    s = np.asarray(scores, dtype=np.float64)
    future_mask = position >= anchor_pos[:, None]
    if (~future_mask.any(axis=1)).any():
        raise ValueError("every instance needs at least one future-rated item (its anchor)")
    future = top_k(np.where(future_mask, s, -np.inf), n_future, None)
    n_kept = np.isfinite(np.take_along_axis(np.where(future_mask, s, -np.inf), future, axis=1)).sum(axis=1)
    if ((position < 0).sum(axis=1) < k - n_kept).any():
        raise ValueError(f"too few unrated items to fill k={k} candidates for some user")
    out = np.empty((len(s), k), dtype=np.int64)
    near = None
    if rule is FillerRule.POPULARITY_MATCHED:
        if bins is None:
            raise ValueError("the popularity-matched rule needs the items' popularity bins")
        n_bins = int(bins.max()) + 1
        near = [sorted(range(n_bins), key=lambda x, b=b: (abs(x - b), x)) for b in range(n_bins)]
    for row in range(len(s)):
        rated = future[row, :n_kept[row]]
        unrated = np.flatnonzero(position[row] < 0)
        ranked = unrated[np.lexsort((unrated, -s[row, unrated]))]  # best retrieved first, ties by index
        m = k - len(rated)
        fill = ranked[:m] if near is None else _matched_fill(ranked, bins, bins[rated], m, near)
        chosen = np.concatenate([rated, fill])
        out[row] = chosen[np.lexsort((chosen, -s[row, chosen]))]
    return out


def _matched_fill(ranked: np.ndarray, bins: np.ndarray, rated_bins: np.ndarray, m: int,
                  near: list[list[int]]) -> np.ndarray:
    """``m`` items of ``ranked`` (retriever order) whose popularity bins follow ``rated_bins`` cycled.

    ``near[b]`` lists all bins by distance to ``b`` (lower first on ties): where bin ``b``
    runs out of unrated items, the slot takes the best-retrieved item of the nearest bin.
    """
    n_bins = len(near)
    targets = np.bincount(np.resize(rated_bins, m), minlength=n_bins)
    grouped = ranked[np.argsort(bins[ranked], kind="stable")]   # by bin, retriever order inside
    start = np.searchsorted(bins[grouped], np.arange(n_bins + 1))
    used = start[:-1].copy()
    picked: list[np.ndarray] = []
    for b in np.flatnonzero(targets):
        need = int(targets[b])
        for other in near[b]:
            take = grouped[used[other]:min(used[other] + need, start[other + 1])]
            used[other] += len(take)
            need -= len(take)
            picked.append(take)
            if need == 0:
                break
    fill = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    if len(fill) < m:
        raise ValueError(f"only {len(fill)} unrated items for {m} filler slots")
    return fill
