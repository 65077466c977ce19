"""User-KNN and Item-KNN imputation of unobserved engagement (reward-signal ablation, paper Table 8).

Both work on the observed training interactions as a user x item matrix ``R``
(values, duplicates averaged) and give point estimates only (no variance).
A user is described by a *profile* ``{item_id: value}`` (their observed
interactions, plus an instance's history), so users outside the matrix work too.

User-KNN (cosine over users' value vectors)::

    sim(p, v) = <p, R_v> / (|p| |R_v|)
    r_hat(p, i) = sum_{v in N_k(p, i)} sim(p, v) R_vi / sum_{v in N_k(p, i)} sim(p, v)

with ``N_k(p, i)`` the ``k`` most similar users with ``sim > 0`` that observed ``i``.

Item-KNN (cosine over items' user vectors, columns of ``R``)::

    sim(i, j) = <R_.i, R_.j> / (|R_.i| |R_.j|)
    r_hat(p, i) = sum_{j in N_k(i, p)} sim(i, j) p_j / sum_{j in N_k(i, p)} sim(i, j)

with ``N_k(i, p)`` the ``k`` profile items most similar to ``i`` with ``sim > 0``.

When no neighbour qualifies (or ``i`` was never observed), the estimate falls
back to the mean of the profile's values, and to the global mean of ``R`` for
an empty profile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

DEFAULT_NEIGHBOURS = 20


class _InteractionMatrix:
    """Observed values as CSR/CSC matrices with an explicit observed mask (a value may be 0)."""

    def __init__(self, interactions: pd.DataFrame) -> None:
        frame = interactions.groupby(["user_id", "item_id"], sort=True)["value"].mean().reset_index()
        self.users = {u: n for n, u in enumerate(pd.unique(frame["user_id"]))}
        self.items = {i: n for n, i in enumerate(pd.unique(frame["item_id"]))}
        rows = frame["user_id"].map(self.users).to_numpy()
        cols = frame["item_id"].map(self.items).to_numpy()
        shape = (len(self.users), len(self.items))
        values = frame["value"].to_numpy(np.float64)
        self.values = sparse.csr_matrix((values, (rows, cols)), shape=shape)
        self.observed = sparse.csr_matrix((np.ones(len(frame)), (rows, cols)), shape=shape)
        self.global_mean = float(values.mean()) if len(values) else 0.0

    def profile_vector(self, profile: Mapping[str, float]) -> np.ndarray:
        vec = np.zeros(len(self.items))
        for item, value in profile.items():
            if item in self.items:
                vec[self.items[item]] = value
        return vec

    def fallback(self, profile: Mapping[str, float]) -> float:
        return float(np.mean(list(profile.values()))) if profile else self.global_mean


class UserKNN:
    """User-based collaborative filtering imputer; see the module docstring."""

    def __init__(self, interactions: pd.DataFrame, k: int = DEFAULT_NEIGHBOURS) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.matrix = _InteractionMatrix(interactions)
        self._norms = np.sqrt(np.asarray(self.matrix.values.multiply(self.matrix.values).sum(axis=1)).ravel())

    def predict(
        self, profile: Mapping[str, float], item_ids: Sequence[str], exclude_user: str | None = None
    ) -> np.ndarray:
        """Estimates ``[len(item_ids)]`` for the user ``profile``; ``exclude_user`` is never a neighbour."""
        m = self.matrix
        out = np.full(len(item_ids), m.fallback(profile))
        p = m.profile_vector(profile)
        known = [(n, m.items[i]) for n, i in enumerate(item_ids) if i in m.items]
        p_norm = np.linalg.norm(p)
        if not known or p_norm == 0:
            return out
        sims = np.divide(
            m.values @ p, self._norms * p_norm, out=np.zeros(len(m.users)), where=self._norms > 0
        )
        if exclude_user is not None and exclude_user in m.users:
            sims[m.users[exclude_user]] = 0.0
        pos, cols = (np.array(x) for x in zip(*known, strict=True))
        weight = np.where(m.observed[:, cols].toarray() > 0, np.maximum(sims, 0.0)[:, None], 0.0)
        est = _top_k_weighted_mean(weight, m.values[:, cols].toarray(), self.k)
        out[pos] = np.where(np.isnan(est), out[pos], est)
        return out


class ItemKNN:
    """Item-based collaborative filtering imputer; see the module docstring."""

    def __init__(self, interactions: pd.DataFrame, k: int = DEFAULT_NEIGHBOURS) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.matrix = _InteractionMatrix(interactions)
        self._csc = self.matrix.values.tocsc()
        self._norms = np.sqrt(np.asarray(self._csc.multiply(self._csc).sum(axis=0)).ravel())

    def predict(
        self, profile: Mapping[str, float], item_ids: Sequence[str], exclude_user: str | None = None
    ) -> np.ndarray:
        """Estimates ``[len(item_ids)]`` for a user described by ``profile`` (``exclude_user`` is unused)."""
        m = self.matrix
        out = np.full(len(item_ids), m.fallback(profile))
        known = [(n, m.items[i]) for n, i in enumerate(item_ids) if i in m.items]
        mine = [(m.items[i], v) for i, v in profile.items() if i in m.items]
        if not known or not mine:
            return out
        pos, cols = (np.array(x) for x in zip(*known, strict=True))
        prof_cols = np.array([c for c, _ in mine])
        prof_vals = np.array([v for _, v in mine], dtype=np.float64)
        dots = (self._csc[:, cols].T @ self._csc[:, prof_cols]).toarray()  # [K', P]
        denom = self._norms[cols][:, None] * self._norms[prof_cols][None, :]
        sims = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
        est = _top_k_weighted_mean(
            np.maximum(sims, 0.0).T, np.broadcast_to(prof_vals[:, None], sims.T.shape), self.k
        )
        out[pos] = np.where(np.isnan(est), out[pos], est)
        return out


def _top_k_weighted_mean(weight: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Per column: weighted mean of ``values`` over the ``k`` largest positive weights; NaN if none.

    Ties at the k-th weight are broken by row order (stable sort), so results are deterministic.
    """
    if weight.shape[0] > k:
        keep = np.argsort(-weight, axis=0, kind="stable")[:k]
        weight = np.take_along_axis(weight, keep, axis=0)
        values = np.take_along_axis(values, keep, axis=0)
    total = weight.sum(axis=0)
    num = (weight * values).sum(axis=0)
    return np.divide(num, total, out=np.full(weight.shape[1], np.nan), where=total > 0)
