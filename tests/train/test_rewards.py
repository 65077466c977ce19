"""Rewards: closed forms against brute-force swap recomputation, and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.train.credit.rewards import (
    brute_force_swap_rewards,
    causal_swap_rewards,
    discounts,
    ideal_dcg,
    independent_rewards,
    ndcg,
    noncausal_swap_rewards,
    rank_level_rewards,
    sequence_rewards,
)


def _batch(seed: int, b: int, k: int) -> np.ndarray:
    """Random gains with ties (integer grades) and zeros, plus a few continuous rows."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 4, size=(b, k)).astype(float)
    g[: b // 3] = rng.exponential(1.0, size=(b // 3, k))
    g[-1] = 0.0
    g[-2] = 2.0
    return g


CASES = [(30, None), (30, 10), (7, 3), (5, 1), (1, None), (2, None)]


@pytest.mark.parametrize(("k", "cutoff"), CASES)
def test_causal_swap_matches_brute_force(k: int, cutoff: int | None) -> None:
    gains = _batch(k, 24, k)
    idcg = ideal_dcg(gains, cutoff)
    fast = causal_swap_rewards(gains, idcg, cutoff)
    np.testing.assert_allclose(fast, brute_force_swap_rewards(gains, idcg, cutoff), rtol=0, atol=1e-12)
    assert np.all(fast[:, -1] == 0.0)


@pytest.mark.parametrize(("k", "cutoff"), CASES)
def test_noncausal_swap_matches_brute_force(k: int, cutoff: int | None) -> None:
    gains = _batch(k + 100, 24, k)
    idcg = ideal_dcg(gains, cutoff)
    ref = brute_force_swap_rewards(gains, idcg, cutoff, causal=False)
    np.testing.assert_allclose(noncausal_swap_rewards(gains, idcg, cutoff), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("k", "cutoff"), CASES)
def test_independent_and_rank_level_match_definitions(k: int, cutoff: int | None) -> None:
    gains = _batch(k + 200, 16, k)
    idcg = ideal_dcg(gains, cutoff)
    d = discounts(k, cutoff)
    inv = np.divide(1.0, idcg, out=np.zeros_like(idcg), where=idcg > 0)
    indep = independent_rewards(gains, idcg, cutoff)
    brute_rank = np.array(
        [
            [sum(row[j] * d[j] for j in range(kk, k)) * z for kk in range(k)]
            for row, z in zip(gains, inv, strict=True)
        ]
    )
    np.testing.assert_allclose(indep, gains * d * inv[:, None], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rank_level_rewards(gains, idcg, cutoff), brute_rank, rtol=0, atol=1e-12)
    # the first rank-level reward and the sum of independent rewards both equal NDCG
    np.testing.assert_allclose(indep.sum(1), ndcg(gains, idcg, cutoff), atol=1e-12)
    np.testing.assert_allclose(brute_rank[:, 0], ndcg(gains, idcg, cutoff), atol=1e-12)


def test_causal_swap_hand_computed() -> None:
    # y = (a, b, c) with gains (1, 3, 0); d = (1, 1/log2 3, 1/2); IDCG = 3 + 1/log2 3
    d2 = 1 / np.log2(3)
    idcg = 3 + d2
    gains = np.array([[1.0, 3.0, 0.0]])
    r = causal_swap_rewards(gains, np.array([idcg]))
    r1 = ((1 - 3) * (1 - d2) + (1 - 0) * (1 - 0.5)) / 2 / idcg
    r2 = (3 - 0) * (d2 - 0.5) / idcg
    np.testing.assert_allclose(r[0], [r1, r2, 0.0], atol=1e-15)
    assert r[0, 0] < 0 < r[0, 1]  # the weaker item on top is blamed, the strong one credited


def test_zero_idcg_gives_zero_rewards() -> None:
    gains = np.zeros((2, 4))
    idcg = np.zeros(2)
    for fn in (causal_swap_rewards, noncausal_swap_rewards, independent_rewards, rank_level_rewards):
        out = fn(gains, idcg)
        assert np.all(out == 0) and np.all(np.isfinite(out))


def test_discounts_and_cutoff() -> None:
    np.testing.assert_allclose(discounts(4), [1, 1 / np.log2(3), 0.5, 1 / np.log2(5)])
    np.testing.assert_array_equal(discounts(4, cutoff=2)[2:], [0, 0])
    with pytest.raises(ValueError):
        discounts(3, cutoff=0)


def test_shape_validation() -> None:
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        causal_swap_rewards(np.ones(3), np.ones(1))
    with pytest.raises(ValueError, match="finite"):
        causal_swap_rewards(np.ones((1, 3)), np.array([-1.0]))


def test_sequence_rewards_format_term() -> None:
    r = sequence_rewards(
        np.array([0.5, 0.5, 0.2]), np.array([True, True, False]), np.array([True, False, False])
    )
    np.testing.assert_allclose(r, [0.6, 0.5, -1.8])
    with pytest.raises(ValueError, match="unparsed"):
        sequence_rewards(np.array([0.1]), np.array([False]), np.array([True]))


def test_reward_ndcg_is_the_metric_ndcg() -> None:
    from flexbench import metrics

    rng = np.random.default_rng(3)
    gains = rng.random((6, 30)) * (rng.random((6, 30)) > 0.4)
    ranked = gains[:, rng.permutation(30)]
    for cut in (5, 10, 30):
        idcg = ideal_dcg(gains, cut)
        np.testing.assert_allclose(ndcg(ranked, idcg, cut), metrics.ndcg_at(ranked, metrics.ideal_order(gains), cut),
                                   rtol=0, atol=1e-12)
    assert discounts is metrics.discounts
