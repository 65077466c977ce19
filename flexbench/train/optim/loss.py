"""The policy loss: PPO-clip on per-token advantages, k3 KL to a frozen reference, entropy bonus.

For completion token ``t`` of rollout ``i`` with advantage ``A_t`` (per token:
FlexRec gives item tokens their item advantage and other tokens the sequence
advantage), ratio ``rho_t = pi(a_t|s_t) / pi_old(a_t|s_t)``:

    L_pg  = -min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)          (Schulman et al. 2017)
    L_kl  = exp(q_t) - q_t - 1,  q_t = log pi_ref(a_t|s_t) - log pi(a_t|s_t)
            (k3, an unbiased, non-negative, low-variance estimator of KL(pi || pi_ref); Schulman 2020)
    H_t   = -sum_v pi(v|s_t) log pi(v|s_t)
    L     = sum_t m_t (L_pg + beta L_kl - c H_t) / N

``m_t`` masks padding and ``N`` is the number of unmasked tokens in the whole
optimizer step (verl's ``token-mean``), passed in explicitly so that gradient
accumulation over micro-batches gives the same gradient as one large batch.

Rank-level ratio (Rank-GRPO, Zhu et al. 2025; ``importance_sampling_level="item"``
in the public ``libs/trl/rank_grpo_trainer.py``): with ``ratio_groups`` every token
of answer entry ``k`` uses the entry's ratio, the geometric mean of its token ratios,

    rho_k = exp( mean_{t in k} log rho_t ),

clipped as one unit; tokens outside any entry keep their own ratio. At
``rho = 1`` (one on-policy update per batch) the gradient equals the per-token
one: ``n_k`` tokens each carry ``d rho_k = (1/n_k) sum_{t in k} d log pi_t`` (tested).

At ``rho = 1`` with ``beta = c = 0`` the gradient with respect to the logits at
token ``t`` is ``-A_t (onehot(a_t) - softmax(z_t)) / N`` (tested).

The sampling distribution (SPEC 6): every log-probability (policy, sampling
policy, reference), and so the ratio, the k3 KL and the entropy, is taken under
the distribution the rollout was drawn from. Under constrained decoding that is
the softmax over the tokens allowed at the step (``support`` in
:func:`token_logprobs`), not over the vocabulary: with prefix-independent
logits ``z`` the full-vocabulary gradient of a permutation's log-probability,
``sum_k (e_{v_k} - softmax(z))``, is the same for every permutation, so a
zero-sum sequence advantage cancels exactly, while under the masked
distribution the term of item ``v`` is ``1 - sum_{k <= m(v)} q_{R_k}(v)`` and
depends on the rank ``m(v)`` it was placed at. Forced tokens (a single allowed
choice) have log-probability 0, ratio 1, KL 0, entropy 0 and no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LossOutput:
    """The scalar loss to backpropagate and its detached parts (means over unmasked tokens)."""

    loss: torch.Tensor
    policy: float
    kl: float
    entropy: float
    clip_fraction: float


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, support: torch.Tensor | None = None,
                   support_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``log softmax(logits)[tokens]`` per position: logits ``[B, T, V]``, tokens ``[B, T]`` -> ``[B, T]``.

    With a ``support`` (``[B, T, A]`` token IDs, ``support_mask`` marking the real
    ones) the softmax runs over the supported tokens only, the distribution a
    constrained sampler drew from (:func:`masked_logits`): a position whose
    support is one token has log-probability exactly 0 and no gradient.
    """
    logits = logits.float()
    picked = torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1)
    if support is None:
        return picked - torch.logsumexp(logits, dim=-1)
    allowed = masked_logits(logits, support, support_mask)
    logp = picked - torch.logsumexp(allowed, dim=-1)
    return torch.where(forced(support_mask), torch.zeros_like(logp), logp)


def token_entropy(logits: torch.Tensor, support: torch.Tensor | None = None,
                  support_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Entropy ``-sum_v p log p`` of each position's distribution (over the ``support`` if given): ``[B, T]``."""
    logits = logits.float()
    if support is not None:
        logits = masked_logits(logits, support, support_mask)
    logp = torch.log_softmax(logits, dim=-1)
    p = logp.exp()
    ent = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)
    return ent if support is None else torch.where(forced(support_mask), torch.zeros_like(ent), ent)


def masked_logits(logits: torch.Tensor, support: torch.Tensor, support_mask: torch.Tensor | None) -> torch.Tensor:
    """``[B, T, A]`` logits of the supported tokens, ``-inf`` where ``support_mask`` is False.

    Constrained decoding adds ``-inf`` to every logit outside the allowed set
    before sampling (:class:`flexbench.llm.constrained.PermutationLogitsProcessor`),
    so the sampling distribution is the softmax over the allowed logits alone;
    gathering them (``A`` is at most the number of candidates plus the EOS
    tokens) avoids a ``[B, T, V]`` mask.
    """
    if support_mask is None:
        raise ValueError("a support needs its mask")
    picked = torch.gather(logits, -1, support)
    return picked.masked_fill(~support_mask.bool(), float("-inf"))


def forced(support_mask: torch.Tensor | None) -> torch.Tensor:
    """``[B, T]`` True where the support holds at most one token (the step had no choice)."""
    if support_mask is None:
        raise ValueError("a support needs its mask")
    return support_mask.bool().sum(-1) <= 1


def masked_sum_mean(x: torch.Tensor, mask: torch.Tensor, denom: float | None = None) -> torch.Tensor:
    """``sum(x * mask) / denom`` with ``denom = sum(mask)`` by default (at least 1)."""
    total = (x * mask).sum()
    n = float(mask.sum().item()) if denom is None else float(denom)
    return total / max(n, 1.0)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator ``exp(q) - q - 1`` with ``q = log pi_ref - log pi`` (>= 0)."""
    q = ref_logprobs - logprobs
    # expm1 keeps the O(q^2) value exact for small q, where exp(q) - q - 1 rounds to 0 or below; the clamp
    # removes what rounding leaves below 0 (the estimator is >= 0), with the gradient of expm1(q) - q elsewhere
    return (torch.expm1(q) - q).clamp(min=0.0)


def group_log_ratio(log_ratio: torch.Tensor, groups: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` log-ratios where each token of group ``g >= 0`` of a row takes its group's mean.

    ``groups[b, t]`` is the answer entry of token ``t`` (``-1``: no entry, the token
    keeps its own log-ratio); the mean runs over the group's unmasked tokens, so
    ``exp`` of it is the geometric mean of the token ratios (module docstring).
    """
    if groups.shape != log_ratio.shape:
        raise ValueError(f"ratio groups {tuple(groups.shape)} do not match the tokens {tuple(log_ratio.shape)}")
    member = (groups >= 0) & (mask > 0)
    if not bool(member.any()):
        return log_ratio
    ids = groups.clamp(min=0).long()
    width = int(ids.max()) + 1
    weight = member.to(log_ratio.dtype)
    sums = torch.zeros(log_ratio.shape[0], width, dtype=log_ratio.dtype, device=log_ratio.device)
    sums = sums.scatter_add(1, ids, log_ratio * weight)
    counts = torch.zeros_like(sums).scatter_add(1, ids, weight)
    means = (sums / counts.clamp(min=1.0)).gather(1, ids)
    return torch.where(groups >= 0, means, log_ratio)


def pad_groups(rows: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    """Stack per-rollout token group IDs into ``[B, width]`` (``-1`` past each row's end)."""
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.as_tensor(list(row), dtype=torch.long)
    return out


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    denom: float | None = None,
    ratio_groups: torch.Tensor | None = None,
) -> LossOutput:
    """The module-level loss ``L`` over ``[B, T]`` tensors (see the module docstring).

    ``old_logprobs`` are detached log-probabilities of the sampling policy;
    ``ref_logprobs`` those of the frozen reference (needed when
    ``kl_coef > 0``); ``entropy`` per token (needed when ``entropy_coef > 0``);
    ``ratio_groups`` (``[B, T]`` entry index or -1) switches to Rank-GRPO's
    rank-level ratio (:func:`group_log_ratio`).
    """
    mask = mask.to(logprobs.dtype)
    log_ratio = logprobs - old_logprobs.detach()
    if ratio_groups is not None:
        log_ratio = group_log_ratio(log_ratio, ratio_groups.to(log_ratio.device), mask)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    pg = -torch.minimum(unclipped, clipped)
    total = pg
    kl_value = torch.zeros_like(pg)
    if kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs ref_logprobs")
        kl_value = k3_kl(logprobs, ref_logprobs.detach())
        total = total + kl_coef * kl_value
    ent_value = torch.zeros_like(pg)
    if entropy_coef > 0:
        if entropy is None:
            raise ValueError("entropy_coef > 0 needs the per-token entropy")
        ent_value = entropy
        total = total - entropy_coef * ent_value
    loss = masked_sum_mean(total, mask, denom)
    with torch.no_grad():
        n = max(float(mask.sum().item()), 1.0)
        clip_frac = (((ratio - 1.0).abs() > clip_eps).to(mask.dtype) * mask).sum() / n
        return LossOutput(
            loss=loss,
            policy=float((pg * mask).sum() / n),
            kl=float((kl_value * mask).sum() / n),
            entropy=float((ent_value * mask).sum() / n),
            clip_fraction=float(clip_frac),
        )
