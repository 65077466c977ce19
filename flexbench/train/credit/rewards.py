"""Item-, rank- and sequence-level rewards of ranked lists (SPEC sections 5 and 6).

Every function is vectorised over a batch of rankings: ``gains[b, k]`` is the
gain of the item that rollout ``b`` placed at rank ``k + 1`` (0-based column
``k``), ``idcg[b]`` the ideal DCG of that rollout's candidate set *at the same
cutoff*, and ``cutoff`` the metric cutoff (``None`` means the whole list, K).

Notation (1-based ranks ``k = 1..K``)::

    d_k  = 1 / log2(k + 1)   for k <= cutoff, else 0
    f(y) = DCG(y) / IDCG = sum_k g_k d_k / IDCG

A rollout whose IDCG is 0 (every candidate has gain 0) gets reward 0 everywhere:
no ranking of it is better than another.

Swapping ranks ``k`` and ``j`` leaves IDCG unchanged, so
``f(y) - f(y^(k<->j)) = (g_k - g_j)(d_k - d_j) / IDCG``. With exclusive suffix
sums ``S_x(k) = sum_{j>k} x_j`` the causal swap reward of paper Eq. (1) is O(K)
per rank (see :func:`causal_swap_operator` for how it is evaluated)::

    r_k = [ (K-k) g_k d_k - g_k S_d(k) - d_k S_g(k) + S_gd(k) ] / ((K-k) IDCG),   r_K = 0

:func:`brute_force_swap_rewards` builds every swapped ranking and recomputes
NDCG; it is the reference the closed forms are tested and benchmarked against.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from flexbench import metrics
from flexbench.metrics import discounts

FORMAT_BONUS = 0.1
"""Rec-R1 format term for an output that is a valid permutation of the candidates."""
PARSE_PENALTY = -2.0
"""Rec-R1 format term for an output from which no list could be parsed."""


def ideal_dcg(candidate_gains: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """IDCG of each row of ``candidate_gains [B, K]``: DCG of the gains sorted descending, at ``cutoff``."""
    g = np.atleast_2d(np.asarray(candidate_gains, dtype=np.float64))
    return metrics.dcg_at(metrics.ideal_order(g), cutoff or g.shape[1])


def ndcg(gains: np.ndarray, idcg: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """``f(y) = DCG(y) / IDCG`` per rollout (``[B]``); 0 where IDCG is 0 (DCG of :func:`flexbench.metrics.dcg_at`)."""
    g, inv = _prepare(gains, idcg)
    return metrics.dcg_at(g, cutoff or g.shape[1]) * inv


def causal_swap_rewards(gains: np.ndarray, idcg: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """FlexRec causal swap reward ``[B, K]`` (SPEC 6, paper Eq. 1): one matrix product per batch.

    ``r_k = 1/(K-k) * sum_{j=k+1..K} [f(y) - f(y^(k<->j))]``: the mean loss in NDCG
    when the item at rank k is swapped with an item of the remaining pool;
    ``r_K = 0`` (nothing remains to swap with). The suffix-sum closed form is
    linear in the gains, so ``r = (gains @ W) / IDCG`` with the operator of
    :func:`causal_swap_operator`.
    """
    g, inv = _prepare(gains, idcg)
    return (g @ causal_swap_operator(g.shape[1], cutoff)) * inv[:, None]


@lru_cache(maxsize=64)
def causal_swap_operator(k: int, cutoff: int | None = None) -> np.ndarray:
    """The ``[K, K]`` matrix ``W`` with ``causal_swap_rewards = gains @ W / IDCG`` (read-only, cached).

    Regrouping the SPEC 6 closed form by gain (1-based ranks, ``n_k = K - k``)::

        r_k * IDCG = [ n_k g_k d_k - g_k S_d(k) - d_k S_g(k) + S_gd(k) ] / n_k
                   = [ (n_k d_k - S_d(k)) g_k + sum_{j>k} (d_j - d_k) g_j ] / n_k

    so ``W[k, k] = (n_k d_k - S_d(k)) / n_k``, ``W[j, k] = (d_j - d_k) / n_k`` for
    ``j > k``, 0 above the diagonal and in the last column. Per rollout this is
    the O(K) suffix-sum recurrence unrolled into one BLAS product, which at the
    K of a ranking prompt (tens) runs far faster in NumPy than O(K) separate
    elementwise passes over the batch.
    """
    d = discounts(k, cutoff)
    n_after = np.arange(k - 1, -1, -1, dtype=np.float64)
    inv_n = np.divide(1.0, n_after, out=np.zeros(k), where=n_after > 0)
    later = np.tril(np.ones((k, k)), -1)  # later[j, k] = 1 for j > k
    w = (np.diag(n_after * d - _suffix_after(d)) + later * (d[:, None] - d[None, :])) * inv_n[None, :]
    w.setflags(write=False)
    return w


def noncausal_swap_rewards(gains: np.ndarray, idcg: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """Non-causal swap ablation ``[B, K]``: the mean over *all* ``j != k`` (earlier ranks too).

    ``r_k = 1/(K-1) * sum_{j != k} (g_k - g_j)(d_k - d_j) / IDCG``
    ``    = [K g_k d_k - g_k sum(d) - d_k sum(g) + sum(gd)] / ((K-1) IDCG)``; 0 when K = 1.
    """
    g, inv = _prepare(gains, idcg)
    big_k = g.shape[1]
    if big_k <= 1:
        return np.zeros_like(g)
    d = discounts(big_k, cutoff)
    gd = g * d
    total = big_k * gd - g * d.sum() - d * g.sum(axis=1, keepdims=True) + gd.sum(axis=1, keepdims=True)
    return total / (big_k - 1) * inv[:, None]


def independent_rewards(gains: np.ndarray, idcg: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """Independent-contribution ablation ``[B, K]``: ``r_k = g_k d_k / IDCG``."""
    g, inv = _prepare(gains, idcg)
    return g * discounts(g.shape[1], cutoff) * inv[:, None]


def rank_level_rewards(gains: np.ndarray, idcg: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """Rank-GRPO rank-level reward ``[B, K]`` (SPEC 5): ``r_k = sum_{j>=k} g_j d_j / IDCG``.

    The "log" reward of Rank-GRPO, DCG@k:N (Zhu et al. 2025; public code
    ``libs/reward_funcs.py: reward_func_log_decay``, ``total_dcg - prefix_excl``),
    here divided by IDCG: one constant per prompt group, which the per-rank
    normalisation of :func:`flexbench.train.credit.grpo.rank_grpo_advantages`
    removes up to its ``eps``. Callers pass gain 0 for invalid or duplicate
    entries and for ranks after the list: such an entry contributes nothing, yet
    its own reward is the reward-to-go of its rank, as in the published code.
    """
    g, inv = _prepare(gains, idcg)
    gd = g * discounts(g.shape[1], cutoff)
    return np.flip(np.cumsum(np.flip(gd, axis=1), axis=1), axis=1) * inv[:, None]


def sequence_rewards(
    ndcg: np.ndarray,
    parsed: np.ndarray,
    valid_permutation: np.ndarray,
    *,
    bonus: float = FORMAT_BONUS,
    penalty: float = PARSE_PENALTY,
) -> np.ndarray:
    """Rec-R1 sequence reward ``[B]``: NDCG of the repaired list plus the format term (SPEC 5).

    ``R = ndcg + bonus`` for a valid permutation, ``ndcg + penalty`` when the output
    could not be parsed, ``ndcg`` otherwise (parsed, but with invalid, duplicate
    or missing IDs).
    """
    score = np.asarray(ndcg, dtype=np.float64)
    ok = np.asarray(parsed, dtype=bool)
    perm = np.asarray(valid_permutation, dtype=bool)
    if not (score.shape == ok.shape == perm.shape) or score.ndim != 1:
        raise ValueError(
            f"ndcg, parsed and valid_permutation must be 1-D of one shape; got "
            f"{score.shape}, {ok.shape}, {perm.shape}"
        )
    if np.any(perm & ~ok):
        raise ValueError("an unparsed output cannot be a valid permutation; check the parse flags")
    return score + np.where(perm, bonus, 0.0) + np.where(ok, 0.0, penalty)


def brute_force_swap_rewards(
    gains: np.ndarray, idcg: np.ndarray, cutoff: int | None = None, *, causal: bool = True
) -> np.ndarray:
    """Reference implementation: build every swapped ranking and recompute NDCG (O(K^3) per rollout).

    For each rank k and each partner j (``j > k`` when ``causal``, else every
    ``j != k``), swaps the two columns of ``gains``, recomputes ``f`` from scratch
    and averages ``f(y) - f(y^(k<->j))``. Vectorised over the batch only; used by
    the tests and by ``benchmarks/bench_rewards.py``.
    """
    g, inv = _prepare(gains, idcg)
    big_k = g.shape[1]
    d = discounts(big_k, cutoff)
    base = (g @ d) * inv
    out = np.zeros_like(g)
    for k in range(big_k):
        partners = range(k + 1, big_k) if causal else [j for j in range(big_k) if j != k]
        for j in partners:
            swapped = g.copy()
            swapped[:, [k, j]] = swapped[:, [j, k]]
            out[:, k] += base - (swapped @ d) * inv
        if len(partners):
            out[:, k] /= len(partners)
    return out


def _prepare(gains: np.ndarray, idcg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes; return float64 gains ``[B, K]`` and ``1 / IDCG`` (0 where IDCG is 0)."""
    g = np.asarray(gains, dtype=np.float64)
    z = np.asarray(idcg, dtype=np.float64)
    if g.ndim != 2 or z.shape != (g.shape[0],):
        raise ValueError(f"gains must be [B, K] and idcg [B]; got {g.shape} and {z.shape}")
    if not np.all(np.isfinite(z) & (z >= 0)):
        raise ValueError("idcg must be finite and >= 0 (gains are not checked: NaN propagates)")
    inv = np.divide(1.0, z, out=np.zeros_like(z), where=z > 0)
    return g, inv


def _suffix_after(x: np.ndarray) -> np.ndarray:
    """Exclusive suffix sums along the last axis: ``out[..., k] = sum_{j>k} x[..., j]``."""
    inclusive = np.flip(np.cumsum(np.flip(x, axis=-1), axis=-1), axis=-1)
    out = np.zeros_like(inclusive)
    out[..., :-1] = inclusive[..., 1:]
    return out
