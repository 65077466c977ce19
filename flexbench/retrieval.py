"""STAR-style frozen candidate retrieval (Lee et al., 2025; SPEC section 2; paper Appendix D).

User query vector from the history ``h_1..h_L`` (most recent last) with
engagement ``w_j`` and item embeddings ``e_j``:

    q = normalise( sum_j w_j * lambda^(t_j) * e_j ),   t_j = 0 for the most recent item   [lambda = 0.7]

(the normalisation does not change the cosine ranking). A history whose
weights are all zero falls back to ``w_j = 1``. Candidates are the top-K items
by cosine similarity ``<q, e_c>`` (embeddings are unit vectors), excluding the
history items; ties are broken by item index so retrieval is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

LAMBDA = 0.7


def query_vectors(history: np.ndarray, weights: np.ndarray, embeddings: np.ndarray,
                  lam: float = LAMBDA) -> np.ndarray:
    """``[N, d]`` unit query vectors; ``history`` ``[N, L]`` item indices padded on the left with -1."""
    if not 0 < lam <= 1:
        raise ValueError(f"lambda must lie in (0, 1], got {lam}")
    valid = history >= 0
    if not valid.any(axis=1).all():
        raise ValueError("every instance needs at least one history item")
    age = np.cumsum(valid[:, ::-1], axis=1)[:, ::-1] - 1          # 0 for the most recent valid item
    w = np.where(valid, np.asarray(weights, dtype=np.float64), 0.0)
    w = np.where((w.sum(axis=1, keepdims=True) > 0), w, valid.astype(np.float64))
    coef = w * np.power(lam, np.clip(age, 0, None))
    safe = np.where(valid, history, 0)
    q = np.empty((len(history), embeddings.shape[1]), dtype=np.float64)
    for start in range(0, len(history), 1024):
        rows = slice(start, start + 1024)
        q[rows] = np.einsum("nl,nld->nd", coef[rows], embeddings[safe[rows]])
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    return (q / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def score_chunks(queries: np.ndarray, embeddings: np.ndarray, chunk: int = 1024) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, cosine scores [chunk, n_items])`` to bound memory on large catalogues."""
    for start in range(0, len(queries), chunk):
        yield start, queries[start:start + chunk] @ embeddings.T


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """``[N, k]`` item indices by descending score, ties by index, skipping ``exclude`` (``[N, *]``, -1 pads)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.size:
        rows = np.repeat(np.arange(len(s)), exclude.shape[1])
        cols = exclude.ravel()
        keep = cols >= 0
        s[rows[keep], cols[keep]] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    if exclude is not None and np.isinf(np.take_along_axis(s, order, axis=1)).any():
        raise ValueError(f"fewer than k={k} items remain after excluding the history")
    return order


def candidate_scores(queries: np.ndarray, embeddings: np.ndarray, candidates: np.ndarray,
                     chunk: int = 1024) -> np.ndarray:
    """``[N, K]`` cosine ``<q_n, e_c>`` of each instance's candidates (float64, chunked)."""
    out = np.empty(candidates.shape, dtype=np.float64)
    for start in range(0, len(candidates), chunk):
        rows = slice(start, start + chunk)
        out[rows] = np.einsum("nd,nkd->nk", queries[rows], embeddings[candidates[rows]])
    return out


def retrieve(history: np.ndarray, weights: np.ndarray, embeddings: np.ndarray, k: int,
             lam: float = LAMBDA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates ``[N, k]``, their cosine scores ``[N, k]`` and the query vectors ``[N, d]``."""
    queries = query_vectors(history, weights, embeddings, lam)
    cands = np.empty((len(queries), k), dtype=np.int64)
    for start, scores in score_chunks(queries, embeddings):
        cands[start:start + len(scores)] = top_k(scores, k, history[start:start + len(scores)])
    return cands, candidate_scores(queries, embeddings, cands), queries
