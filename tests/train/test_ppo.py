"""PPO pieces: GAE against a direct recursion, token rewards, value loss clipping, the value head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flexbench.train.optim.ppo import ValueHead, gae, token_rewards, value_loss, whiten


def _gae_reference(r: list[float], v: list[float], gamma: float, lam: float) -> tuple[list[float], list[float]]:
    adv, nxt_a = [0.0] * len(r), 0.0
    for t in reversed(range(len(r))):
        nxt_v = v[t + 1] if t + 1 < len(r) else 0.0
        delta = r[t] + gamma * nxt_v - v[t]
        nxt_a = delta + gamma * lam * nxt_a
        adv[t] = nxt_a
    return adv, [a + b for a, b in zip(adv, v, strict=True)]


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (1.0, 1.0)])
def test_gae_matches_recursion_with_right_padding(gamma: float, lam: float) -> None:
    rng = np.random.default_rng(0)
    lengths = [5, 3]
    r = torch.tensor(rng.normal(size=(2, 5)), dtype=torch.float32)
    v = torch.tensor(rng.normal(size=(2, 5)), dtype=torch.float32)
    mask = torch.tensor([[1.0] * 5, [1.0] * 3 + [0.0] * 2])
    a, ret = gae(r, v, mask, gamma, lam)
    for i, n in enumerate(lengths):
        ref_a, ref_ret = _gae_reference(r[i, :n].tolist(), v[i, :n].tolist(), gamma, lam)
        np.testing.assert_allclose(a[i, :n].numpy(), ref_a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ret[i, :n].numpy(), ref_ret, rtol=1e-5, atol=1e-6)
        assert torch.all(a[i, n:] == 0)


def test_gae_with_lambda_one_is_return_to_go_minus_value() -> None:
    r = torch.tensor([[0.0, 1.0, 0.0, 2.0]])
    v = torch.tensor([[0.5, 0.2, 0.1, 0.3]])
    a, _ = gae(r, v, torch.ones(1, 4), 1.0, 1.0)
    torch.testing.assert_close(a, torch.tensor([[3.0, 3.0, 2.0, 2.0]]) - v)


def test_token_rewards_place_entry_rewards_on_last_tokens() -> None:
    r = token_rewards(6, [1, 3, -1], [0.5, -0.25, 9.0], final_reward=0.1)
    np.testing.assert_allclose(r, [0, 0.5, 0, -0.25, 0, 0.1])


def test_value_loss_clips_large_moves() -> None:
    old = torch.tensor([[0.0]])
    ret = torch.tensor([[1.0]])
    near = value_loss(torch.tensor([[0.1]]), old, ret, torch.ones(1, 1), clip=0.2)
    assert near.item() == pytest.approx(0.5 * 0.81)
    far = value_loss(torch.tensor([[2.0]]), old, ret, torch.ones(1, 1), clip=0.2)
    # max((2-1)^2, (0.2-1)^2) = 1
    assert far.item() == pytest.approx(0.5)


def test_whiten_ignores_masked_entries() -> None:
    x = torch.tensor([[1.0, 3.0, 100.0]])
    m = torch.tensor([[1.0, 1.0, 0.0]])
    out = whiten(x, m)
    torch.testing.assert_close(out, torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-6, rtol=0)


def test_value_head_starts_at_zero_and_learns() -> None:
    head = ValueHead(8)
    h = torch.randn(3, 4, 8)
    assert torch.all(head(h) == 0)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    target = h[..., 0]
    for _ in range(200):
        opt.zero_grad()
        loss = ((head(h) - target) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
