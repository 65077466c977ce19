"""Credit assignment for one prompt group: parsed rollouts + gains -> per-entry and sequence advantages.

Reward layout of rollout ``i`` (one row, width ``W_i >= K``): the parsed entries
in emitted order — a valid first occurrence carries its candidate's gain,
an invalid ID or a duplicate gain 0 — followed by the candidates the rollout
did not name, in a seeded random order (the paper's random padding, Appendix F).
Item rewards (causal swap, non-causal swap, independent, rank-level) are
computed on this row with the metric cutoff (default ``K``), so an invalid
entry costs the rank it occupies and the swap pool of rank ``k`` is the whole
rest of the list, padding included. Only entries (which have tokens) receive
advantages; ``valid`` marks the valid first occurrences.

Sequence reward ``R_i`` = NDCG@cutoff of the repaired list (valid first
occurrences, then the same padding) plus the Rec-R1 format term
(:func:`flexbench.train.credit.rewards.sequence_rewards`).

Per method (:class:`~flexbench.train.methods.MethodSpec`):

* item GRPO (FlexRec): pooled item advantages on entries, ``A_i`` elsewhere;
* rank GRPO (Rank-GRPO as its public code does it, :mod:`flexbench.train.credit.grpo`):
  the rank-level reward of each emitted entry over the *entries only* (no padding:
  the published rewards give the ranks after the list 0), per-rank advantages on
  the entries, valid or not, and advantage 0 on every other token (the published
  loss masks separators and EOS out; here they keep only the KL and entropy terms);
* sequence GRPO (Rec-R1): ``A_i`` everywhere;
* GAE (PPO): token rewards instead of advantages (item reward on an entry's last
  token, the format term — or for ``ppo`` the whole ``R_i`` — on the last token);

and with uncertainty scaling every advantage of rollout ``i`` (or, for
``weight_scope = sequence``, only its sequence-level advantage) is multiplied by
``w_i = clip(normalised 1 / (V_i + eps))``, ``V_i = sum_k (d_k / IDCG)^2 s2_k``
over the row, around the weighted baseline (SPEC 6: ``b_w = sum w_i R_i / sum w_i``
for sequence rewards, the weighted pool mean for item rewards), so a group's
advantages sum to zero at each level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from flexbench.train.credit import grpo as adv
from flexbench.train.credit import rewards as rw
from flexbench.train.credit.uncertainty import sequence_variance, uncertainty_weights
from flexbench.train.methods import Advantage, ItemReward, MethodSpec, WeightScope

_ITEM_REWARD: dict[ItemReward, Callable[..., np.ndarray]] = {
    ItemReward.CAUSAL: rw.causal_swap_rewards,
    ItemReward.NONCAUSAL: rw.noncausal_swap_rewards,
    ItemReward.INDEPENDENT: rw.independent_rewards,
    ItemReward.RANK_LEVEL: rw.rank_level_rewards,
}


class EntryLike(Protocol):
    """What credit assignment reads of a parsed entry (:class:`flexbench.llm.parsing.ParsedEntry`)."""

    item_id: str | None
    status: str


class ParsedLike(Protocol):
    """What credit assignment reads of a parsed output (:class:`flexbench.llm.parsing.ParsedRanking`)."""

    entries: tuple[Any, ...]
    parsed: bool


@dataclass(frozen=True)
class RewardRow:
    """The reward layout of one rollout (module docstring)."""

    gains: np.ndarray        # [W] entries in emitted order, then the padding
    variances: np.ndarray    # [W]
    valid: np.ndarray        # [W] bool: valid first occurrences among the entries
    n_entries: int
    repaired: np.ndarray     # [K] gains of the repaired list
    parsed: bool
    valid_permutation: bool


@dataclass(frozen=True)
class GroupCredit:
    """Credit of one group of ``G`` rollouts.

    ``entry_adv[i]`` holds one advantage per parsed entry of rollout ``i``;
    ``seq_adv[i]`` is the advantage of its other tokens. For PPO methods
    ``entry_reward``/``final_reward`` are the token rewards and the advantages
    are left to GAE (``seq_adv`` is 0). ``weights`` are the uncertainty weights
    (1 when off).
    """

    entry_adv: list[np.ndarray]
    seq_adv: np.ndarray
    entry_reward: list[np.ndarray]
    final_reward: np.ndarray
    seq_reward: np.ndarray
    ndcg: np.ndarray
    weights: np.ndarray


def reward_row(parsed: ParsedLike, candidate_ids: Sequence[str], gains: np.ndarray, variances: np.ndarray,
               rng: np.random.Generator) -> RewardRow:
    """Build the reward layout of one rollout (padding order drawn from ``rng``)."""
    index = {c: j for j, c in enumerate(candidate_ids)}
    g_row, v_row, ok, named = [], [], [], []
    for entry in parsed.entries:
        j = index.get(entry.item_id) if entry.item_id is not None else None
        good = entry.status == "valid" and j is not None
        g_row.append(float(gains[j]) if good else 0.0)
        v_row.append(float(variances[j]) if good else 0.0)
        ok.append(good)
        if good:
            named.append(j)
    seen = set(named)
    missing = np.array([j for j in range(len(candidate_ids)) if j not in seen], dtype=np.int64)
    missing = missing[rng.permutation(len(missing))] if len(missing) else missing
    g_all = np.concatenate([np.asarray(g_row, dtype=np.float64), gains[missing]])
    v_all = np.concatenate([np.asarray(v_row, dtype=np.float64), variances[missing]])
    valid = np.concatenate([np.asarray(ok, dtype=bool), np.zeros(len(missing), dtype=bool)])
    repaired = np.concatenate([gains[np.asarray(named, dtype=np.int64)], gains[missing]])
    perm = parsed.parsed and len(named) == len(candidate_ids) == len(parsed.entries)
    return RewardRow(g_all, v_all, valid, len(parsed.entries), repaired, bool(parsed.parsed), bool(perm))


def group_credit(rows: Sequence[RewardRow], candidate_gains: np.ndarray, method: MethodSpec, *,
                 cutoff: int | None = None, clip: tuple[float, float] = (0.25, 4.0),
                 eps: float = 1e-6) -> GroupCredit:
    """Advantages (or PPO token rewards) of one group; ``candidate_gains [K]`` define IDCG."""
    k = len(candidate_gains)
    cut = min(cutoff or k, k)
    idcg = float(rw.ideal_dcg(np.asarray(candidate_gains, dtype=np.float64)[None], cut)[0])
    ndcg = np.array([rw.ndcg(r.repaired[None], np.array([idcg]), cut)[0] for r in rows])
    seq_reward = rw.sequence_rewards(ndcg, np.array([r.parsed for r in rows]),
                                     np.array([r.valid_permutation for r in rows]))
    item_r = _item_rewards(rows, method, idcg, cut)
    weights = np.ones(len(rows))
    if method.uncertainty:
        var = sequence_variance(_stack([r.variances for r in rows]), np.full(len(rows), idcg), cut)
        weights = uncertainty_weights(var, clip=clip, eps=eps)
    if method.advantage is Advantage.GAE:
        return _ppo_credit(rows, item_r, seq_reward, ndcg, weights, method)
    w_seq = weights if method.uncertainty else None
    w_item = weights if method.uncertainty and method.weight_scope is WeightScope.ALL else None
    seq_adv = adv.sequence_advantages(seq_reward, eps, w_seq)
    if method.advantage is Advantage.SEQUENCE_GRPO:
        entry_adv = [np.full(r.n_entries, a) for r, a in zip(rows, seq_adv, strict=True)]
    elif method.advantage is Advantage.ITEM_GRPO:
        table = adv.item_advantages(_stack(item_r), _stack([r.valid for r in rows], fill=False), eps, w_item)
        entry_adv = [table[i, :r.n_entries] for i, r in enumerate(rows)]
    else:  # Rank-GRPO: every emitted rank, no sequence-level credit
        present = _stack([np.arange(len(r.gains)) < r.n_entries for r in rows], fill=False)
        table = adv.rank_grpo_advantages(_stack(item_r), present)
        entry_adv = [table[i, :r.n_entries] for i, r in enumerate(rows)]
        seq_adv = np.zeros(len(rows))
    zeros = [np.zeros(r.n_entries) for r in rows]
    return GroupCredit(entry_adv, seq_adv, zeros, np.zeros(len(rows)), seq_reward, ndcg, weights)


def list_ndcg(rows: Sequence[RewardRow], candidate_gains: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """NDCG@cutoff of each row's repaired list, with the IDCG of ``candidate_gains`` (as :func:`group_credit`)."""
    k = len(candidate_gains)
    cut = min(cutoff or k, k)
    idcg = float(rw.ideal_dcg(np.asarray(candidate_gains, dtype=np.float64)[None], cut)[0])
    return np.array([rw.ndcg(r.repaired[None], np.array([idcg]), cut)[0] for r in rows])


def observed_variance_share(ndcg: np.ndarray, observed_ndcg: np.ndarray, groups: np.ndarray) -> float | None:
    """Share of the within-group variance of the list reward that the observed labels explain.

    The list reward is linear in the gains, so ``R_i = R_i^obs + R_i^imp`` with
    ``R^obs`` the NDCG of the same list when every imputed gain is set to 0 (same
    IDCG). Then ``Var_g(R) = Cov_g(R, R^obs) + Cov_g(R, R^imp)`` and the share is
    ``sum_g Cov_g(R, R^obs) / sum_g Var_g(R)`` over the step's groups: 1 when
    every gain is observed, near 0 when the group's rewards differ only through
    imputed gains (the critic's or KNN's estimates). ``None`` when no group's
    rewards vary.
    """
    r, o, g = (np.asarray(x) for x in (ndcg, observed_ndcg, groups))
    cov = var = 0.0
    for k in np.unique(g):
        rk, ok = r[g == k].astype(np.float64), o[g == k].astype(np.float64)
        cov += float(np.mean((rk - rk.mean()) * (ok - ok.mean())))
        var += float(rk.var())
    return cov / var if var > 1e-15 else None


def _item_rewards(rows: Sequence[RewardRow], method: MethodSpec, idcg: float, cut: int) -> list[np.ndarray]:
    """Item reward of every position of each row; rank-level rewards see the entries only (no padding)."""
    if method.item_reward is ItemReward.NONE:
        return [np.zeros(len(r.gains)) for r in rows]
    fn, z = _ITEM_REWARD[method.item_reward], np.array([idcg])
    if method.item_reward is ItemReward.RANK_LEVEL:
        return [fn(np.where(np.arange(len(r.gains)) < r.n_entries, r.gains, 0.0)[None], z, cut)[0] for r in rows]
    return [fn(r.gains[None], z, cut)[0] for r in rows]


def _ppo_credit(rows: Sequence[RewardRow], item_r: list[np.ndarray], seq_reward: np.ndarray,
                ndcg: np.ndarray, weights: np.ndarray, method: MethodSpec) -> GroupCredit:
    if method.item_reward is ItemReward.NONE:
        entry_reward = [np.zeros(r.n_entries) for r in rows]
        final = seq_reward.copy()
    else:
        entry_reward = [np.where(r.valid[:r.n_entries], x[:r.n_entries], 0.0) for r, x in zip(rows, item_r,
                                                                                               strict=True)]
        final = seq_reward - ndcg  # the format term; the list quality is in the item rewards
    zeros = [np.zeros(r.n_entries) for r in rows]
    return GroupCredit(zeros, np.zeros(len(rows)), entry_reward, final, seq_reward, ndcg, weights)


def _stack(rows: Sequence[np.ndarray], fill: float | bool = 0.0) -> np.ndarray:
    width = max(len(r) for r in rows)
    dtype = bool if isinstance(fill, bool) else np.float64
    out = np.full((len(rows), width), fill, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
