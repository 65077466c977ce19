"""Ranking metrics of FlexBench as small pure, vectorised functions (SPEC section 4).

Every function takes a batch of ``B`` instances padded to a common width ``K``
(zeros beyond an instance's own candidates, which change no metric) and returns
one float64 value per instance. Inputs are *ranked*: column ``j`` holds the item
at rank ``j + 1`` of the ranking being scored (1-based ranks in the formulas).

* NDCG with linear gain (Järvelin & Kekäläinen, TOIS 2002, doi:10.1145/582415.582418)::

      DCG@k  = sum_{j=1..k} g_j / log2(j + 1)
      IDCG@k = DCG@k of the instance's candidates sorted by gain, descending
      NDCG@k = DCG@k / IDCG@k            (0 when IDCG@k = 0)

  ``g_j`` is the need's float score of the item at rank ``j`` (SPEC section 3).
  Float gains are used as they are; ranx 0.3.21 stores qrels as integers and
  truncates them (1.73 -> 1, ESCI's S = 0.1 -> 0), which is why these functions
  exist (see ``tests/test_metrics.py``, which pins that behaviour).
* On the binary relevant set ``R`` with ``r_j = 1`` when the item at rank ``j``
  is in ``R`` (same conventions as ranx and trec_eval)::

      Recall@k    = (sum_{j<=k} r_j) / |R|       (0 when R is empty)
      Precision@k = (sum_{j<=k} r_j) / k
      MRR@k       = 1 / min{j <= k : r_j = 1}    (0 when no hit in the top k)

Ties: metrics score the ranking exactly as given; rankers break ties (by item
ID) before the harness sees their output, so no tie handling happens here. The
IDCG is tie-invariant because it depends only on the multiset of gains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from flexbench.types import NeedLabels

METRIC_NAMES: tuple[str, ...] = ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "precision@5", "mrr@5")
NDCG_CUTOFFS: tuple[int, ...] = (5, 10, 30)
SET_CUTOFF = 5


def discounts(width: int, cutoff: int | None = None) -> np.ndarray:
    """Position discounts ``d_j = 1 / log2(j + 1)`` for ranks ``j = 1..width``, 0 beyond ``cutoff``.

    The one definition of the rank discount: the training rewards
    (:mod:`flexbench.train.credit.rewards`) use it too, so a reward's NDCG is the
    metric's NDCG.
    """
    if width < 0:
        raise ValueError(f"width must be >= 0, got {width}")
    if cutoff is not None and cutoff < 1:
        raise ValueError(f"cutoff must be >= 1 or None, got {cutoff}")
    d = 1.0 / np.log2(np.arange(2, width + 2, dtype=np.float64))
    if cutoff is not None:
        d[cutoff:] = 0.0
    return d


def dcg_at(ranked_gains: np.ndarray, k: int) -> np.ndarray:
    """``DCG@k = sum_{j<=k} g_j / log2(j + 1)`` per row of ``ranked_gains`` [B, K]."""
    gains = np.asarray(ranked_gains, dtype=np.float64)[:, :k]
    return gains @ discounts(gains.shape[1])


def ndcg_at(ranked_gains: np.ndarray, ideal_gains: np.ndarray, k: int) -> np.ndarray:
    """``NDCG@k = DCG@k / IDCG@k`` (0 where IDCG@k = 0).

    ``ideal_gains`` [B, K] are the candidates' gains sorted in descending order
    (see :func:`ideal_order`).
    """
    dcg = dcg_at(ranked_gains, k)
    idcg = dcg_at(ideal_gains, k)
    out = np.zeros_like(dcg)
    np.divide(dcg, idcg, out=out, where=idcg > 0)
    return out


def ideal_order(gains: np.ndarray) -> np.ndarray:
    """Each row's gains sorted descending (the ideal ranking's gains)."""
    return -np.sort(-np.asarray(gains, dtype=np.float64), axis=1)


def hits_at(ranked_relevant: np.ndarray, k: int) -> np.ndarray:
    """Number of relevant items in the top ``k``: ``sum_{j<=k} r_j``."""
    return np.asarray(ranked_relevant, dtype=np.float64)[:, :k].sum(axis=1)


def recall_at(ranked_relevant: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """``Recall@k = hits@k / |R|`` (0 where ``|R| = 0``)."""
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    hits = hits_at(ranked_relevant, k)
    out = np.zeros_like(hits)
    np.divide(hits, n_rel, out=out, where=n_rel > 0)
    return out


def precision_at(ranked_relevant: np.ndarray, k: int) -> np.ndarray:
    """``Precision@k = hits@k / k``."""
    return hits_at(ranked_relevant, k) / k


def mrr_at(ranked_relevant: np.ndarray, k: int) -> np.ndarray:
    """``MRR@k = 1 / rank of the first relevant item`` within the top ``k``, else 0."""
    top = np.asarray(ranked_relevant, dtype=bool)[:, :k]
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)


def compute_metrics(ranked_gains: np.ndarray, ideal_gains: np.ndarray,
                    ranked_relevant: np.ndarray, n_relevant: np.ndarray) -> dict[str, np.ndarray]:
    """All of :data:`METRIC_NAMES` for a padded batch; each value has shape [B]."""
    out = {f"ndcg@{k}": ndcg_at(ranked_gains, ideal_gains, k) for k in NDCG_CUTOFFS}
    out[f"recall@{SET_CUTOFF}"] = recall_at(ranked_relevant, n_relevant, SET_CUTOFF)
    out[f"precision@{SET_CUTOFF}"] = precision_at(ranked_relevant, SET_CUTOFF)
    out[f"mrr@{SET_CUTOFF}"] = mrr_at(ranked_relevant, SET_CUTOFF)
    return out


def batch_arrays(rankings: Sequence[Sequence[str]], labels: Sequence[NeedLabels],
                 width: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Padded ``(ranked_gains, ideal_gains, ranked_relevant, n_relevant)`` for a batch.

    ``rankings[b]`` lists item IDs best first; an ID without a label (not a
    candidate) has gain 0 and is not relevant. ``width`` defaults to the largest
    ranking or candidate set in the batch.
    """
    if len(rankings) != len(labels):
        raise ValueError(f"{len(rankings)} rankings for {len(labels)} label sets")
    width = width or max([len(r) for r in rankings] + [len(lab.gains) for lab in labels] + [1])
    ranked = np.zeros((len(labels), width))
    ideal = np.zeros((len(labels), width))
    relevant = np.zeros((len(labels), width), dtype=bool)
    for b, (ranking, lab) in enumerate(zip(rankings, labels, strict=True)):
        gain = lab.gain_of()
        ranked[b, :len(ranking)] = [gain.get(i, 0.0) for i in ranking[:width]]
        ideal[b, :len(lab.gains)] = sorted(lab.gains, reverse=True)[:width]
        relevant[b, :len(ranking)] = [i in lab.relevant for i in ranking[:width]]
    n_relevant = np.array([len(lab.relevant) for lab in labels], dtype=np.float64)
    return ranked, ideal, relevant, n_relevant


def score_rankings(rankings: Sequence[Sequence[str]],
                   labels: Sequence[NeedLabels]) -> list[dict[str, float]]:
    """Per-instance metric dicts (keys :data:`METRIC_NAMES`) for a batch of rankings."""
    if not rankings:
        return []
    values = compute_metrics(*batch_arrays(rankings, labels))
    return [{name: float(values[name][b]) for name in METRIC_NAMES} for b in range(len(rankings))]


def mean_metrics(per_instance: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over instances (0 for an empty sequence)."""
    return {name: float(np.mean([m[name] for m in per_instance])) if per_instance else 0.0
            for name in METRIC_NAMES}


def zero_metrics() -> dict[str, float]:
    """Every metric at 0: the strict-mode score of an unparseable output (SPEC section 4)."""
    return dict.fromkeys(METRIC_NAMES, 0.0)
