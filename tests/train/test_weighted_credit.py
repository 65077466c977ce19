"""Uncertainty weights with a weighted baseline: a group's advantages sum to zero (SPEC 6)."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.train.credit.assign import group_credit, observed_variance_share, reward_row
from flexbench.train.credit.grpo import sequence_advantages, weighted_standardize
from flexbench.train.methods import get_method


class _Entry:
    def __init__(self, item_id: str) -> None:
        self.item_id, self.status = item_id, "valid"


class _Parsed:
    def __init__(self, ids: list[str]) -> None:
        self.entries, self.parsed = tuple(_Entry(i) for i in ids), True


def _group(seed: int = 0, g: int = 8, k: int = 6) -> tuple[list, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    ids = [f"c{j}" for j in range(k)]
    gains, variances = rng.random(k) * 3, rng.random(k) * rng.integers(0, 2, k)  # some observed (variance 0)
    rows = [reward_row(_Parsed([ids[j] for j in rng.permutation(k)]), ids, gains, variances,
                       np.random.default_rng(i)) for i in range(g)]
    return rows, gains


@pytest.mark.parametrize("seed", range(5))
def test_flexrec_advantages_sum_to_zero_at_both_levels(seed: int) -> None:
    rows, gains = _group(seed)
    credit = group_credit(rows, gains, get_method("flexrec"), cutoff=10)
    assert np.ptp(credit.weights) > 0.01  # the weights do differ
    assert abs(credit.seq_adv.sum()) < 1e-10
    assert abs(np.concatenate(credit.entry_adv).sum()) < 1e-10


def test_old_multiplied_form_was_not_zero_sum() -> None:
    """What the weighted baseline fixes: centring on the unweighted mean, then multiplying, leaves a net push."""
    rows, gains = _group(1)
    credit = group_credit(rows, gains, get_method("flexrec"), cutoff=10)
    old = sequence_advantages(credit.seq_reward) * credit.weights
    assert abs(old.sum()) > 1e-3


def test_weighted_baseline_is_the_weighted_mean() -> None:
    x, w = np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 2.0])
    b = (1 + 2 + 8) / 4
    np.testing.assert_allclose(weighted_standardize(x, w, 0.0), w * (x - b) / x.std())
    np.testing.assert_array_equal(weighted_standardize(np.ones(3), w, 1e-6), np.zeros(3))


def test_seqweight_weights_only_the_sequence_advantage() -> None:
    rows, gains = _group(2)
    seqw = group_credit(rows, gains, get_method("flexrec-seqweight"), cutoff=10)
    full = group_credit(rows, gains, get_method("flexrec"), cutoff=10)
    raw = group_credit(rows, gains, get_method("flexrec-rawcritic"), cutoff=10)
    for a, b in zip(seqw.entry_adv, raw.entry_adv, strict=True):
        np.testing.assert_allclose(a, b)  # item advantages as without weights
    np.testing.assert_allclose(seqw.seq_adv, full.seq_adv)
    assert abs(seqw.seq_adv.sum()) < 1e-10


def test_observed_variance_share_bounds() -> None:
    r = np.array([0.9, 0.5, 0.7, 0.2])
    groups = np.array([0, 0, 1, 1])
    assert observed_variance_share(r, r, groups) == pytest.approx(1.0)
    assert observed_variance_share(r, np.zeros(4), groups) == pytest.approx(0.0)
    assert observed_variance_share(np.ones(4), np.ones(4), groups) is None
