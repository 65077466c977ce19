"""Advantages: hand-computed small groups, the invalid-entry rule, and degenerate groups."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.train.credit.grpo import item_advantages, rank_grpo_advantages, sequence_advantages


def test_sequence_advantages_hand_computed() -> None:
    # R = (1, 2, 3): mean 2, population std sqrt(2/3)
    a = sequence_advantages(np.array([1.0, 2.0, 3.0]), eps=0.0)
    s = np.sqrt(2 / 3)
    np.testing.assert_allclose(a, [-1 / s, 0.0, 1 / s])


def test_item_advantages_pool_all_rollouts() -> None:
    rewards = np.array([[0.3, 0.1], [0.0, 0.2]])
    valid = np.ones_like(rewards, dtype=bool)
    a = item_advantages(rewards, valid, eps=0.0)
    pool = rewards.ravel()
    np.testing.assert_allclose(a, (rewards - pool.mean()) / pool.std())


def test_item_advantages_invalid_rule() -> None:
    # valid pool {1, 3, 5}: mean 3, std sqrt(8/3); invalid entries take the worst valid advantage
    rewards = np.array([[1.0, 99.0, 3.0], [5.0, -7.0, 0.0]])
    valid = np.array([[True, False, True], [True, False, False]])
    a = item_advantages(rewards, valid, eps=0.0)
    s = np.sqrt(8 / 3)
    worst = -2 / s
    np.testing.assert_allclose(a, [[worst, worst, 0.0], [2 / s, worst, worst]])


def test_item_advantages_degenerate_groups() -> None:
    same = item_advantages(
        np.full((3, 4), 0.3), np.array([[True] * 4, [True] * 4, [True, True, False, False]])
    )
    assert np.all(same == 0.0)
    none_valid = item_advantages(np.ones((2, 3)), np.zeros((2, 3), dtype=bool))
    assert np.all(none_valid == 0.0)
    single = item_advantages(np.array([[0.7, 0.2]]), np.array([[True, False]]))
    assert np.all(single == 0.0)


def test_zero_variance_never_nan() -> None:
    full = np.ones((8, 30), bool)
    for eps in (1e-6, 0.0):
        outs = (
            sequence_advantages(np.full(8, 0.1 + 0.2), eps=eps),
            item_advantages(np.full((8, 30), 1 / 3), full, eps=eps),
            rank_grpo_advantages(np.full((8, 30), 0.7), full, eps=eps),
        )
        for out in outs:
            assert np.all(np.isfinite(out)) and np.all(out == 0.0)


def test_rank_grpo_advantages_hand_computed() -> None:
    """Per-rank normalisation with Bessel's std (torch.std in the public Rank-GRPO code)."""
    rewards = np.array([[0.9, 0.4], [0.5, 0.4], [0.1, 0.8]])
    present = np.array([[True, True], [True, True], [True, False]])
    a = rank_grpo_advantages(rewards, present, eps=0.0)
    col0 = np.array([0.9, 0.5, 0.1])
    col1 = np.array([0.4, 0.4, 0.0])  # the third rollout's list ended before rank 2: reward 0
    expected = np.stack([(col0 - col0.mean()) / col0.std(ddof=1), (col1 - col1.mean()) / col1.std(ddof=1)], axis=1)
    np.testing.assert_allclose(a, expected)
    # default eps 1e-4
    np.testing.assert_allclose(
        rank_grpo_advantages(rewards, present)[:, 0], (col0 - col0.mean()) / (col0.std(ddof=1) + 1e-4)
    )


def test_shape_checks() -> None:
    with pytest.raises(ValueError):
        item_advantages(np.ones((2, 3)), np.ones((2, 2), bool))
    with pytest.raises(ValueError):
        sequence_advantages(np.ones((2, 2)))
    with pytest.raises(ValueError, match="finite"):
        sequence_advantages(np.array([1.0, np.nan]))
