"""A deep ensemble of critics: mixture moments and loading through the gain provider's imputer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flexbench.errors import FlexBenchError
from flexbench.train.signal.ensemble import ENSEMBLE_FILE, CriticEnsemble, load_critic_any, member_dir


class _Member:
    def __init__(self, mean: float, var: float) -> None:
        self.item_ids, self.item_index, self.config = ["a", "b"], {"a": 0, "b": 1}, None
        self.mean, self.var = mean, var

    def predict(self, history, engagement, item):  # type: ignore[no-untyped-def]
        n = len(item)
        return np.full(n, self.mean), np.full(n, self.var)


def test_mixture_moments_add_the_members_disagreement() -> None:
    ens = CriticEnsemble([_Member(1.0, 0.5), _Member(3.0, 0.1)])
    mean, var = ens.predict(np.zeros((2, 1)), np.zeros((2, 1)), np.array([0, 1]))
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(var, [0.3 + 1.0, 0.3 + 1.0])  # mean noise + variance of the means


def test_members_must_share_items() -> None:
    other = _Member(0.0, 1.0)
    other.item_ids = ["a"]
    with pytest.raises(FlexBenchError):
        CriticEnsemble([_Member(0.0, 1.0), other])


def test_load_critic_any_reads_an_ensemble_of_saved_critics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flexbench.train.signal.critic import Critic, CriticConfig, save_critic

    emb = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    for m in range(2):
        import torch

        torch.manual_seed(m)
        save_critic(Critic(["x", "y", "z"], emb, CriticConfig(hidden=8, history_len=2)), member_dir(tmp_path, m))
    (tmp_path / ENSEMBLE_FILE).write_text(json.dumps({"members": 2}))
    ens = load_critic_any(tmp_path)
    assert isinstance(ens, CriticEnsemble) and len(ens.members) == 2
    hist, eng = np.zeros((3, 2), dtype=np.int64), np.ones((3, 2), dtype=np.float32)
    mean, var = ens.predict(hist, eng, np.array([0, 1, 2]))
    single = [m.predict(hist, eng, np.array([0, 1, 2])) for m in ens.members]
    np.testing.assert_allclose(mean, (single[0][0] + single[1][0]) / 2, rtol=1e-6)
    assert np.all(var >= np.minimum(single[0][1], single[1][1]) - 1e-9)
