"""Group-relative advantages for one prompt group of G rollouts (SPEC sections 5 and 6).

FlexRec's standard deviations are population standard deviations (``ddof = 0``), as in
the paper's ``sigma_g = sqrt(1/|P| sum (r - mu_g)^2)``; Rank-GRPO's use Bessel's
correction, as its public code does (:func:`rank_grpo_advantages`). A set of rewards that
are all equal carries no preference and yields advantage exactly 0 (never NaN
or Inf), whatever ``eps`` is.

``valid[i, k]`` is True where entry k of rollout i is a valid first occurrence
of a candidate ID; invalid IDs, duplicates and padding are False.

Invalid-entry rule (FlexRec, :func:`item_advantages`): an invalid or duplicate
entry gets ``min(0, min over valid entries of the group of A)``, the advantage of
the group's worst valid item, and never more than 0. Reasons: SPEC 6 requires
"no higher than the group's worst valid item"; an invalid ID is at best as
useless as the worst legitimate choice, so it is never reinforced; matching
(rather than undercutting) the worst valid item keeps its push-down bounded, since
large negative advantages squeeze probability mass into other invalid outputs
(paper Appendix F, Ren and Sutherland 2025). The cap at 0 decides the two
degenerate cases: a group without any valid entry, and a group whose valid
rewards are all equal, give invalid entries 0.
"""

from __future__ import annotations

import numpy as np


def standardize(x: np.ndarray, eps: float, axis: int | None = None, ddof: int = 0) -> np.ndarray:
    """``(x - mean) / (std + eps)`` along ``axis`` (all elements when ``None``); constant slices give 0.

    ``ddof`` is NumPy's: 0 for the population std (FlexRec, GRPO), 1 for Bessel's
    correction (``torch.std``, which Rank-GRPO's public code uses).
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("rewards must be finite")
    if x.size == 0:
        return x.copy()
    mean = x.mean(axis=axis, keepdims=True)
    n = x.size if axis is None else x.shape[axis]
    if n <= ddof:  # a single rollout has no spread: every slice is constant
        return np.zeros_like(x)
    std = x.std(axis=axis, keepdims=True, ddof=ddof)
    constant = x.max(axis=axis, keepdims=True) == x.min(axis=axis, keepdims=True)
    scale = np.where(constant, 1.0, std + eps)
    return np.where(constant, 0.0, (x - mean) / scale)


def weighted_standardize(x: np.ndarray, weights: np.ndarray, eps: float) -> np.ndarray:
    """``w (x - b_w) / (std(x) + eps)`` with the weighted baseline ``b_w = sum w x / sum w`` (SPEC 6).

    The advantages sum to zero whatever the weights (``sum w (x - b_w) = 0``), so
    they are the gradient of the self-normalised weighted reward
    ``E[w R] / E[w]``; the spread is the unweighted population std, as without
    weights. Constant ``x`` gives 0.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != x.shape or np.any(w <= 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite, > 0 and match the rewards; got {w.shape} for {x.shape}")
    if x.size == 0 or x.max() == x.min():
        return np.zeros_like(x)
    baseline = float(np.sum(w * x) / np.sum(w))
    return w * (x - baseline) / (x.std() + eps)


def sequence_advantages(rewards: np.ndarray, eps: float = 1e-6, weights: np.ndarray | None = None) -> np.ndarray:
    """GRPO sequence-level advantage ``A_i = (R_i - mean_g R) / (std_g R + eps)`` of ``rewards [G]``.

    With uncertainty ``weights [G]``: ``A_i = w_i (R_i - b_w) / (std_g R + eps)``,
    ``b_w = sum_i w_i R_i / sum_i w_i`` (:func:`weighted_standardize`).
    """
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"rewards must be [G], got shape {r.shape}")
    return standardize(r, eps) if weights is None else weighted_standardize(r, weights, eps)


def item_advantages(rewards: np.ndarray, valid: np.ndarray, eps: float = 1e-6,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """FlexRec item-level GRPO advantages ``[G, K]``, normalised over the pooled valid item rewards.

    ``P_g = {r_{i,k} : valid[i, k]}``, ``A_{i,k} = (r_{i,k} - mean(P_g)) / (std(P_g) + eps)``
    for valid entries; invalid, duplicate and padding entries get
    ``min(0, min_valid A)`` (see the module docstring). Rewards at non-valid
    entries are ignored. With uncertainty ``weights [G]`` each item reward
    carries its rollout's weight: ``A_{i,k} = w_i (r_{i,k} - mu_w) / (sigma_g + eps)``,
    ``mu_w = sum w_i r_{i,k} / sum w_i`` over the pool (SPEC 6), so the valid
    entries' advantages sum to zero.
    """
    r, ok = _check_group(rewards, valid)
    out = np.zeros_like(r)
    if not ok.any():
        return out
    if weights is None:
        out[ok] = standardize(r[ok], eps)
    else:
        w = np.broadcast_to(np.asarray(weights, dtype=np.float64)[:, None], r.shape)
        out[ok] = weighted_standardize(r[ok], w[ok], eps)
    out[~ok] = min(0.0, float(out[ok].min()))
    return out


def rank_grpo_advantages(rewards: np.ndarray, present: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Rank-GRPO per-rank advantages ``[G, K]``, as in the public code of Zhu et al. (2025).

    Each rank position ``k`` is normalised across the ``G`` rollouts of the prompt::

        A_{i,k} = (r_{i,k} - mean_i r_{.,k}) / (std_i r_{.,k} + eps),   eps = 1e-4

    with the std taken with Bessel's correction (``torch.std`` in
    ``libs/trl/rank_grpo_trainer.py``). ``present[i, k]`` marks the ranks rollout
    ``i`` emitted, valid or not: an invalid or duplicate entry keeps the reward of
    its rank (its own gain is 0, later gains still count in a reward-to-go), and
    a rank that a rollout did not reach counts as reward 0, as the published
    reward functions pad every list with zeros to ``rec_num`` ranks.
    """
    r, here = _check_group(rewards, present)
    return standardize(np.where(here, r, 0.0), eps, axis=0, ddof=1)


def _check_group(rewards: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool)
    if r.ndim != 2 or ok.shape != r.shape:
        raise ValueError(f"rewards and masks must both be [G, K]; got {r.shape} and {ok.shape}")
    if not np.all(np.isfinite(r[ok])):
        raise ValueError("rewards of the entries that count must be finite")
    return r, ok
