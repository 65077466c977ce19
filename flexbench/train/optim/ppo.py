"""PPO pieces for the Table 7 variants: a value head on the policy's hidden states and GAE.

The value head is a linear map of the policy's last hidden state at the
position that predicts token ``t`` (shared trunk, as in TRL's
``AutoModelForCausalLMWithValueHead``): ``V(s_t) = w^T h_t + b``.

Token rewards ``r_t`` (see :mod:`flexbench.train.credit.assign`) are turned into
advantages by generalised advantage estimation (Schulman et al. 2016) with a
terminal value of 0 after the last completion token::

    delta_t = r_t + gamma V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma lambda A_{t+1}
    R_t     = A_t + V(s_t)                      (the value target)

and the value loss is the clipped squared error of PPO2::

    L_V = 1/2 max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from flexbench.train.optim.loss import masked_sum_mean


class ValueHead(nn.Module):
    """``V(s_t) = w^T h_t + b`` on hidden states ``[B, T, H] -> [B, T]`` (zero-initialised)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.float()).squeeze(-1)


def token_rewards(n_tokens: int, entry_last_token: Sequence[int], entry_reward: Sequence[float],
                  final_reward: float) -> np.ndarray:
    """Rewards ``[T]``: entry ``m``'s reward on its last token, ``final_reward`` added on the last token.

    ``entry_last_token[m]`` is -1 for an entry no token covers (its reward is dropped).
    """
    r = np.zeros(n_tokens, dtype=np.float64)
    for t, value in zip(entry_last_token, entry_reward, strict=True):
        if 0 <= t < n_tokens:
            r[t] += float(value)
    if n_tokens:
        r[-1] += float(final_reward)
    return r


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and value targets ``[B, T]`` for right-padded sequences (module docstring)."""
    mask = mask.to(values.dtype)
    r, v = rewards * mask, values * mask
    adv = torch.zeros_like(v)
    running = torch.zeros_like(v[:, 0])
    width = v.shape[1]
    for t in reversed(range(width)):
        next_v = v[:, t + 1] if t + 1 < width else torch.zeros_like(running)
        delta = r[:, t] + gamma * next_v - v[:, t]
        running = delta + gamma * lam * running * (mask[:, t + 1] if t + 1 < width else 0.0)
        adv[:, t] = running * mask[:, t]
    return adv, (adv + v) * mask


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` over the unmasked entries; masked entries become 0."""
    m = mask.to(x.dtype)
    n = m.sum().clamp(min=1.0)
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / n
    return (x - mean) / (var.sqrt() + eps) * m


def weighted_whiten(x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``w_i (x - b_w) / (std + eps)`` per row ``i``: the uncertainty-weighted whitening of GAE advantages.

    ``b_w = sum_{i,t} w_i m x / sum_{i,t} w_i m`` is the weighted mean and ``std``
    the unweighted one (:func:`whiten`), so the weighted advantages of the batch
    sum to zero over the unmasked tokens (SPEC 6's weighted baseline). With
    every weight 1 this is :func:`whiten`.
    """
    m = mask.to(x.dtype)
    w = weights.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1))) * m
    n = m.sum().clamp(min=1.0)
    mean = (x * m).sum() / n
    std = ((((x - mean) * m) ** 2).sum() / n).sqrt()
    baseline = (x * w).sum() / w.sum().clamp(min=1e-12)
    return (x - baseline) * w / (std + eps)


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2, denom: float | None = None) -> torch.Tensor:
    """Clipped value loss ``L_V`` averaged over unmasked tokens (``denom`` as in the policy loss)."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    err = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_sum_mean(err, mask.to(values.dtype), denom)
