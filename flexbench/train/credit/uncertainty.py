"""Uncertainty-aware scaling of GRPO advantages (paper Section 3.3, SPEC 6).

With additive aggregation ``f(y) = sum_k g_k d_k / IDCG`` and no cross-item
covariance, the variance of rollout i's sequence reward is::

    V_i = sum_k (d_k / IDCG_i)^2 * s2_{i,k}

where ``s2`` is the critic's predictive variance of each ranked item's gain
(0 for observed labels). The weight ``w_i = 1 / (V_i + eps)`` is divided by
the group mean of the weights and clipped to ``[0.25, 4.0]``. The weights enter
the advantages through a weighted baseline
(:func:`flexbench.train.credit.grpo.weighted_standardize`), so a group's
advantages still sum to zero. A group whose variances are all 0 gets weight 1
everywhere (plain GRPO).
"""

from __future__ import annotations

import numpy as np

from flexbench.metrics import discounts

DEFAULT_CLIP = (0.25, 4.0)


def sequence_variance(item_var: np.ndarray, idcg: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """``V_i = sum_k (d_k / IDCG_i)^2 s2_{i,k}`` for ``item_var [G, K]`` in ranked order (0 if IDCG is 0)."""
    s2 = np.asarray(item_var, dtype=np.float64)
    z = np.asarray(idcg, dtype=np.float64)
    if s2.ndim != 2 or z.shape != (s2.shape[0],):
        raise ValueError(f"item_var must be [G, K] and idcg [G]; got {s2.shape} and {z.shape}")
    if np.any(s2 < 0) or np.any(z < 0) or not (np.all(np.isfinite(s2)) and np.all(np.isfinite(z))):
        raise ValueError("variances and idcg must be finite and >= 0")
    inv = np.divide(1.0, z, out=np.zeros_like(z), where=z > 0)
    return (s2 @ discounts(s2.shape[1], cutoff) ** 2) * inv**2


def uncertainty_weights(
    variance: np.ndarray, clip: tuple[float, float] = DEFAULT_CLIP, eps: float = 1e-6
) -> np.ndarray:
    """Inverse-variance weights ``[G]``: ``w = 1 / (V + eps)``, divided by the group mean, clipped."""
    v = np.asarray(variance, dtype=np.float64)
    lo, hi = clip
    if v.ndim != 1 or np.any(v < 0) or not np.all(np.isfinite(v)):
        raise ValueError(f"variance must be a finite, non-negative [G] array; got shape {v.shape}")
    if not 0 < lo <= 1 <= hi or eps <= 0:
        raise ValueError(f"clip must satisfy 0 < low <= 1 <= high and eps > 0; got {clip}, eps={eps}")
    if v.size == 0:
        return v.copy()
    w = 1.0 / (v + eps)
    return np.clip(w / w.mean(), lo, hi)


def weight_spread(weights: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Spread of the rollout weights of one step, for ``metrics.jsonl``.

    ``weights [N]`` are the rollouts' weights and ``groups [N]`` their prompt
    group. ``weight_std`` is the mean over groups of the within-group standard
    deviation (population, ``ddof = 0``): 0 when every weight is 1 (all gains
    observed, or no uncertainty scaling), and how unequally the step's
    rollouts count otherwise; ``weight_min``/``weight_max`` are the extremes
    over the step (the clip bounds when the clip binds).
    """
    w = np.asarray(weights, dtype=np.float64)
    g = np.asarray(groups)
    if w.ndim != 1 or g.shape != w.shape or w.size == 0:
        raise ValueError(f"weights and groups must be matching non-empty [N] arrays; got {w.shape}, {g.shape}")
    std = float(np.mean([w[g == k].std() for k in np.unique(g)]))
    return {"weight_std": std, "weight_min": float(w.min()), "weight_max": float(w.max())}
