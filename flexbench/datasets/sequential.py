"""Instances and need labels of the sequential datasets (KuaiRec, ML-1M) from a common source.

A :class:`SequentialSource` is what a loader hands over: the observable,
time-ordered log (KuaiRec: the 10% sparse view; ML-1M: all ratings), the
catalogue, a label matrix (KuaiRec dense watch ratios; ML-1M ratings), the
item-topic matrix and the platform traffic for the trend need.
:func:`build_sequential` then applies SPEC section 2: user split, history
windows, seeded subsampling, STAR retrieval or the ML-1M candidate rule
(:mod:`flexbench.datasets.candidates`: popularity-matched fillers), and the
labels of every need (:data:`flexbench.vocabulary.LABELLED_NEEDS`).

Stored per instance (protocol :data:`flexbench.instances.PROTOCOL_VERSION`):
the candidates in the seeded hash order of :func:`flexbench.instances.storage_order`
(no label or retrieval signal), each candidate's retriever cosine
(``candidate_scores``) and its interactions in the 24 h before the query time
(``candidate_recent_counts``, the trend label's count; shown in trend prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from flexbench.datasets.candidates import (
    FillerRule,
    future_rated_candidates,
    popularity_bins,
    retrieve_candidates,
)
from flexbench.instances import (
    InstanceSizes,
    anchor_windows,
    permute_rows,
    split_users,
    storage_order,
    subsample,
)
from flexbench.retrieval import candidate_scores, query_vectors, score_chunks
from needs import novelty, trend
from needs.interest import interest_labels, rating_gains, watch_ratio_gains
from needs.novelty import niche_mask, novelty_gains, novelty_labels
from needs.trend import TrafficIndex, trend_gains, trend_labels


class LabelKind(StrEnum):
    """What a sequential dataset's label matrix holds (decides the interest gain, SPEC section 3)."""

    WATCH_RATIO = "watch_ratio"  # KuaiRec: gain = watch ratio
    RATING = "rating"            # ML-1M: gain = 2^rating - 1


class CandidateRule(StrEnum):
    """How a sequential dataset's candidates are chosen (SPEC section 2; module docstring)."""

    RETRIEVE = "retrieve"          # top-K of the frozen retriever
    FUTURE_RATED = "future-rated"  # ML-1M: future-rated items first, then unrated fillers


@dataclass(frozen=True)
class SequentialSource:
    """Inputs of :func:`build_sequential` (indices are positions in ``items`` / ``user_ids``).

    ``log`` columns: ``user`` (int code, grouped, time-ordered), ``item``,
    ``value`` (engagement), ``timestamp`` (Unix seconds). ``labels`` is
    ``[n_users, n_items]`` (NaN = unobserved); ``label_kind`` is ``"watch_ratio"``
    or ``"rating"``; ``candidate_rule`` is ``"retrieve"`` or ``"future-rated"``.
    """

    dataset: str
    user_ids: np.ndarray
    items: pd.DataFrame
    log: pd.DataFrame
    labels: np.ndarray
    label_kind: LabelKind
    item_topics: np.ndarray
    traffic: TrafficIndex
    candidate_rule: CandidateRule


@dataclass(frozen=True)
class BuildConfig(InstanceSizes):
    """Instance-construction settings shared by the sequential datasets (sizes: :class:`InstanceSizes`)."""

    lam: float = 0.7
    beta: float = 1.0
    alpha: float = 0.5
    ml_future: int = 10
    filler: str = FillerRule.POPULARITY_MATCHED.value
    filler_bins: int = 10

    def __post_init__(self) -> None:
        if self.filler not in {rule.value for rule in FillerRule}:
            raise ValueError(f"filler must be one of {', '.join(r.value for r in FillerRule)}, got {self.filler!r}")
        if self.filler_bins < 1:
            raise ValueError(f"filler_bins must be >= 1, got {self.filler_bins}")


def topic_matrix(topics: list[list[str]]) -> np.ndarray:
    """``[n_items, n_topics]`` bool matrix from per-item topic lists."""
    names = sorted({t for ts in topics for t in ts})
    col = {t: j for j, t in enumerate(names)}
    out = np.zeros((len(topics), max(1, len(names))), dtype=bool)
    for i, ts in enumerate(topics):
        out[i, [col[t] for t in ts]] = True
    return out


def build_sequential(src: SequentialSource, emb: np.ndarray, cfg: BuildConfig) -> tuple[pd.DataFrame, list]:
    """``(instances frame, labels)`` for every need of ``src.dataset``."""
    log = src.log
    users = log["user"].to_numpy()
    win = anchor_windows(users, cfg.history_len, cfg.min_history)
    split_of_user = split_users(np.arange(len(src.user_ids)), cfg.seed)
    anchor_split = split_of_user[users[win.anchor]]
    pick = subsample(anchor_split, {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test}, cfg.seed)
    anchor, hist_rows = win.anchor[pick], win.history[pick]
    items = log["item"].to_numpy()
    values = log["value"].to_numpy(dtype=np.float64)
    hist = np.where(hist_rows >= 0, items[np.maximum(hist_rows, 0)], -1)
    weights = np.where(hist_rows >= 0, values[np.maximum(hist_rows, 0)], 0.0)
    queries = query_vectors(hist, weights, emb, cfg.lam)
    user = users[anchor]
    cands = _candidates(src, queries, emb, hist, user, anchor, split_of_user, cfg)
    ids = _instance_ids(src, anchor, user)
    cands = permute_rows(cands, storage_order(ids, src.items["item_id"].to_numpy()[cands], cfg.seed))
    sims = candidate_scores(queries, emb, cands)
    qtime = log["timestamp"].to_numpy()[anchor].astype(np.int64)
    counts = src.traffic.counts(cands, qtime)
    frame = _frame(src, ids, hist_rows, hist, cands, user, qtime, split_of_user[user], log, sims, counts)
    cand_ids = list(frame["candidate_ids"])
    raw = src.labels[user[:, None], cands]
    interest = (watch_ratio_gains(src.labels, user, cands) if src.label_kind == LabelKind.WATCH_RATIO
                else rating_gains(raw))
    niche = niche_mask(src.item_topics, hist, cands)
    labels = interest_labels(ids, cand_ids, interest)
    labels += novelty_labels(ids, cand_ids, novelty_gains(sims, niche, cfg.beta))
    labels += novelty_labels(ids, cand_ids, novelty_gains(interest, niche, cfg.beta), novelty.NAME_V2)
    labels += trend_labels(ids, cand_ids, trend_gains(sims, counts, cfg.alpha))
    labels += trend_labels(ids, cand_ids, trend_gains(interest, counts, cfg.alpha), trend.NAME_V2)
    return frame, labels


def _candidates(src: SequentialSource, queries: np.ndarray, emb: np.ndarray, hist: np.ndarray, user: np.ndarray,
                anchor: np.ndarray, split_of_user: np.ndarray, cfg: BuildConfig) -> np.ndarray:
    """``[N, K]`` candidate item indices in retriever order (:mod:`flexbench.datasets.candidates`)."""
    if src.candidate_rule == CandidateRule.RETRIEVE:
        return retrieve_candidates(queries, emb, hist, cfg.k)
    position = _rating_positions(src)                       # [n_users, n_items], -1 = never rated
    log_users = src.log["user"].to_numpy()
    anchor_pos = anchor - np.searchsorted(log_users, user)
    train_rows = split_of_user[log_users] == "train"
    popularity = np.bincount(src.log["item"].to_numpy()[train_rows], minlength=len(src.items))
    bins = popularity_bins(popularity, cfg.filler_bins)
    cands = np.empty((len(queries), cfg.k), dtype=np.int64)
    for start, scores in score_chunks(queries, emb):
        rows = slice(start, start + len(scores))
        cands[rows] = future_rated_candidates(scores, position[user[rows]], anchor_pos[rows], cfg.k,
                                              cfg.ml_future, FillerRule(cfg.filler), bins)
    return cands


def _rating_positions(src: SequentialSource) -> np.ndarray:
    """Position of each (user, item) in the user's time-ordered log, -1 if absent."""
    users = src.log["user"].to_numpy()
    first = np.searchsorted(users, users)
    out = np.full((len(src.user_ids), len(src.items)), -1, dtype=np.int32)
    out[users, src.log["item"].to_numpy()] = np.arange(len(users)) - first
    return out


def _instance_ids(src: SequentialSource, anchor: np.ndarray, user: np.ndarray) -> list[str]:
    """``<dataset>-<user id>-<anchor position in the user's log>``."""
    pos = anchor - np.searchsorted(src.log["user"].to_numpy(), user)
    return [f"{src.dataset}-{src.user_ids[u]}-{p}" for u, p in zip(user, pos, strict=True)]


def _frame(src: SequentialSource, ids: list[str], hist_rows: np.ndarray, hist: np.ndarray, cands: np.ndarray,
           user: np.ndarray, qtime: np.ndarray, split: np.ndarray, log: pd.DataFrame, sims: np.ndarray,
           counts: np.ndarray) -> pd.DataFrame:
    item_ids = src.items["item_id"].to_numpy()
    vals = log["value"].to_numpy(dtype=np.float64)
    stamps = log["timestamp"].to_numpy().astype(np.int64)
    rows = [r[r >= 0] for r in hist_rows]
    frame = pd.DataFrame({
        "instance_id": ids,
        "split": split.astype(str),
        "user_id": [str(src.user_ids[u]) for u in user],
        "query": pd.Series([None] * len(user), dtype=object),
        "query_time": pd.array(qtime, dtype="Int64"),
        "history_item_ids": [list(item_ids[h[h >= 0]]) for h in hist],
        "history_engagement": [vals[r].tolist() for r in rows],
        "history_timestamps": [stamps[r].tolist() for r in rows],
        "candidate_ids": [list(item_ids[c]) for c in cands],
        "candidate_scores": [row.tolist() for row in sims.astype(np.float64)],
        "candidate_recent_counts": [row.tolist() for row in counts.astype(np.int64)],
    })
    return frame  # subsample() orders anchors train, valid, test
