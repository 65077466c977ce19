"""Instances and need labels of the sequential datasets (KuaiRec, ML-1M) from a common source.

A :class:`SequentialSource` is what a loader hands over: the observable,
time-ordered log (KuaiRec: the 10% sparse view; ML-1M: all ratings), the
catalogue, a label matrix (KuaiRec dense watch ratios; ML-1M ratings), the
item-topic matrix and the platform traffic for the trend need.
:func:`build_sequential` then applies SPEC section 2: user split, history
windows, seeded subsampling, STAR retrieval (or the ML-1M candidate rule), and
the labels of every need.

ML-1M candidate rule (a documented deviation from pure retrieval, SPEC section
2): ratings are sparse, so the candidate set takes the user's future-rated
items (rated at or after the anchor) that rank highest under the retriever, up
to ``ml_future`` (10), then fills up to ``K`` with the top retrieved items the
user never rated. Items rated before the anchor but outside the history window
are never candidates. The K candidates are then ordered by retriever score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexbench.instances import anchor_windows, split_users, subsample
from flexbench.retrieval import candidate_scores, query_vectors, score_chunks, top_k
from needs.interest import interest_labels, rating_gains, watch_ratio_gains
from needs.novelty import niche_mask, novelty_gains, novelty_labels
from needs.trend import TrafficIndex, trend_gains, trend_labels


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
    label_kind: str
    item_topics: np.ndarray
    traffic: TrafficIndex
    candidate_rule: str


@dataclass(frozen=True)
class BuildConfig:
    """Instance-construction settings shared by the sequential datasets."""

    n_train: int = 5000
    n_valid: int = 1000
    n_test: int = 1000
    k: int = 30
    history_len: int = 10
    min_history: int = 3
    seed: int = 0
    lam: float = 0.7
    beta: float = 1.0
    alpha: float = 0.5
    ml_future: int = 10


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
    cands = _candidates(src, queries, emb, hist, user, anchor, cfg)
    sims = candidate_scores(queries, emb, cands)
    qtime = log["timestamp"].to_numpy()[anchor].astype(np.int64)
    frame = _frame(src, anchor, hist_rows, hist, cands, user, qtime, split_of_user[user], log)
    ids, cand_ids = list(frame["instance_id"]), list(frame["candidate_ids"])
    raw = src.labels[user[:, None], cands]
    interest = watch_ratio_gains(src.labels, user, cands) if src.label_kind == "watch_ratio" else rating_gains(raw)
    labels = interest_labels(ids, cand_ids, interest)
    labels += novelty_labels(ids, cand_ids, novelty_gains(sims, niche_mask(src.item_topics, hist, cands), cfg.beta))
    labels += trend_labels(ids, cand_ids, trend_gains(sims, src.traffic.counts(cands, qtime), cfg.alpha))
    return frame, labels


def _candidates(src: SequentialSource, queries: np.ndarray, emb: np.ndarray, hist: np.ndarray, user: np.ndarray,
                anchor: np.ndarray, cfg: BuildConfig) -> np.ndarray:
    cands = np.empty((len(queries), cfg.k), dtype=np.int64)
    if src.candidate_rule == "retrieve":
        for start, scores in score_chunks(queries, emb):
            cands[start:start + len(scores)] = top_k(scores, cfg.k, hist[start:start + len(scores)])
        return cands
    position = _rating_positions(src)                       # [n_users, n_items], -1 = never rated
    anchor_pos = anchor - np.searchsorted(src.log["user"].to_numpy(), user)
    for start, scores in score_chunks(queries, emb):
        rows = slice(start, start + len(scores))
        s = scores.astype(np.float64)
        pos = position[user[rows]]
        future = top_k(np.where(pos >= anchor_pos[rows, None], s, -np.inf), cfg.ml_future, None)
        n_future = np.isfinite(np.take_along_axis(np.where(pos >= anchor_pos[rows, None], s, -np.inf),
                                                  future, axis=1)).sum(axis=1)
        fill = top_k(np.where(pos < 0, s, -np.inf), cfg.k, None)
        keep = np.hstack([np.arange(cfg.ml_future)[None, :] < n_future[:, None],
                          np.arange(cfg.k)[None, :] < (cfg.k - n_future)[:, None]])
        both = np.hstack([future, fill])
        score = np.where(keep, np.take_along_axis(s, both, axis=1), -np.inf)
        order = np.lexsort((both, -score), axis=-1)[:, :cfg.k]
        cands[rows] = np.take_along_axis(both, order, axis=1)
    return cands


def _rating_positions(src: SequentialSource) -> np.ndarray:
    """Position of each (user, item) in the user's time-ordered log, -1 if absent."""
    users = src.log["user"].to_numpy()
    first = np.searchsorted(users, users)
    out = np.full((len(src.user_ids), len(src.items)), -1, dtype=np.int32)
    out[users, src.log["item"].to_numpy()] = np.arange(len(users)) - first
    return out


def _frame(src: SequentialSource, anchor: np.ndarray, hist_rows: np.ndarray, hist: np.ndarray, cands: np.ndarray,
           user: np.ndarray, qtime: np.ndarray, split: np.ndarray, log: pd.DataFrame) -> pd.DataFrame:
    ids = src.items["item_id"].to_numpy()
    vals = log["value"].to_numpy(dtype=np.float64)
    stamps = log["timestamp"].to_numpy().astype(np.int64)
    pos = anchor - np.searchsorted(log["user"].to_numpy(), user)
    rows = [r[r >= 0] for r in hist_rows]
    frame = pd.DataFrame({
        "instance_id": [f"{src.dataset}-{src.user_ids[u]}-{p}" for u, p in zip(user, pos, strict=True)],
        "split": split.astype(str),
        "user_id": [str(src.user_ids[u]) for u in user],
        "query": pd.Series([None] * len(user), dtype=object),
        "query_time": pd.array(qtime, dtype="Int64"),
        "history_item_ids": [list(ids[h[h >= 0]]) for h in hist],
        "history_engagement": [vals[r].tolist() for r in rows],
        "history_timestamps": [stamps[r].tolist() for r in rows],
        "candidate_ids": [list(ids[c]) for c in cands],
    })
    return frame  # subsample() orders anchors train, valid, test
