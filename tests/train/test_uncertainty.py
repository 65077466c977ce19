"""Sequence-reward variance and inverse-variance weights."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.train.credit.uncertainty import sequence_variance, uncertainty_weights


def test_sequence_variance_hand_computed() -> None:
    s2 = np.array([[0.5, 0.0, 2.0], [0.0, 0.0, 0.0]])
    idcg = np.array([2.0, 0.0])
    v = sequence_variance(s2, idcg)
    np.testing.assert_allclose(v, [(1 * 0.5 + 0.25 * 2.0) / 4, 0.0])
    np.testing.assert_allclose(sequence_variance(s2, idcg, cutoff=2), [0.5 / 4, 0.0])


def test_weights_normalised_and_clipped() -> None:
    v = np.array([0.0, 1.0, 3.0, 1000.0])
    w = uncertainty_weights(v, eps=1.0)
    raw = 1 / (v + 1.0)
    np.testing.assert_allclose(w, np.clip(raw / raw.mean(), 0.25, 4.0))
    assert w[0] == pytest.approx(1 / (raw.mean()))
    assert w[-1] == 0.25


def test_all_observed_gives_unit_weights() -> None:
    np.testing.assert_array_equal(uncertainty_weights(np.zeros(8)), np.ones(8))


def test_validation() -> None:
    with pytest.raises(ValueError):
        uncertainty_weights(np.array([-1.0]))
    with pytest.raises(ValueError):
        uncertainty_weights(np.array([1.0]), clip=(2.0, 4.0))
    with pytest.raises(ValueError):
        sequence_variance(np.ones((2, 3)), np.ones(3))


def test_weight_spread_is_within_group_std_and_extremes() -> None:
    from flexbench.train.credit.uncertainty import weight_spread

    w = np.array([1.0, 1.0, 0.5, 1.5])  # group 0: std 0; group 1: std 0.5
    out = weight_spread(w, np.array([0, 0, 1, 1]))
    assert out == {"weight_std": 0.25, "weight_min": 0.5, "weight_max": 1.5}
    assert weight_spread(np.ones(4), np.array([0, 0, 1, 1]))["weight_std"] == 0.0
    with pytest.raises(ValueError):
        weight_spread(np.ones(3), np.array([0, 1]))
