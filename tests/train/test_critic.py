"""Critic: beta-NLL gradient, recovery of a heteroscedastic signal, example windows, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from flexbench.errors import FlexBenchError
from flexbench.train.signal.critic import (
    CriticConfig,
    beta_nll_loss,
    evaluate_critic,
    load_critic,
    save_critic,
    train_critic,
)
from flexbench.train.signal.critic_data import CriticExamples, examples_from_interactions, split_indices


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_beta_nll_gradient_matches_autograd(beta: float) -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(64, generator=gen, dtype=torch.float64, requires_grad=True)
    log_var = torch.randn(64, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(64, generator=gen, dtype=torch.float64)
    beta_nll_loss(mu, log_var, y, beta).backward()
    with torch.no_grad():
        s2 = log_var.exp()
        w = s2**beta  # stop-gradient: w is a constant in the derivative
        grad_mu = -w * (y - mu) / s2 / len(y)
        grad_log_var = 0.5 * w * (1 - (y - mu) ** 2 / s2) / len(y)
    torch.testing.assert_close(mu.grad, grad_mu, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(log_var.grad, grad_log_var, rtol=1e-12, atol=1e-14)


def _synthetic(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, CriticExamples, np.ndarray]:
    """y = 2 <u_bar, v> + sigma(v) * eps with sigma 0.05 or 0.6 by the sign of v's first coordinate.

    u_bar is the engagement-weighted mean of the history embeddings, exactly the
    critic's input, so the mean is learnable; the noise scale is a function of the
    item, so the variance is learnable too.
    """
    rng = np.random.default_rng(seed)
    n_items, dim, hist_len = 200, 4, 5
    emb = rng.normal(size=(n_items, dim)).astype(np.float32)
    history = rng.integers(0, n_items, size=(n, hist_len))
    engagement = rng.uniform(0.5, 2.0, size=(n, hist_len)).astype(np.float32)
    item = rng.integers(0, n_items, size=n)
    u_bar = (engagement[..., None] * emb[history]).sum(1) / engagement.sum(1, keepdims=True)
    sigma = np.where(emb[item, 0] > 0, 0.6, 0.05)
    target = (2 * (u_bar * emb[item]).sum(1) + sigma * rng.normal(size=n)).astype(np.float32)
    return [f"i{j}" for j in range(n_items)], emb, CriticExamples(history, engagement, item, target), sigma


def test_critic_recovers_heteroscedastic_signal() -> None:
    item_ids, emb, data, sigma = _synthetic(6000)
    train, valid, test = (data.subset(i) for i in split_indices(len(data), seed=0))
    config = CriticConfig(hidden=64, epochs=20, batch_size=128, lr=3e-3, history_len=5, user_stats=False)
    critic, best_epoch = train_critic(train, valid, item_ids, emb, config)
    report = evaluate_critic(critic, test)
    assert 1 <= best_epoch <= config.epochs
    assert report.pearson_mean > 0.8, report
    assert report.pearson_var > 0.15, report
    _, var = critic.predict(test.history, test.engagement, test.item)
    test_sigma = sigma[split_indices(len(data), seed=0)[2]]
    assert np.median(var[test_sigma > 0.3]) > 2 * np.median(var[test_sigma < 0.3])


def test_examples_windows_and_order() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b", "b", "c"],
            "item_id": ["x", "z", "y", "y", "unknown", "x"],
            "value": [1.0, 3.0, 2.0, 5.0, 9.0, 4.0],
            "timestamp": [10, 30, 20, 5, 6, 1],
        }
    )
    ex = examples_from_interactions(frame, {"x": 0, "y": 1, "z": 2}, history_len=2)
    # user a in time order x(1), y(2), z(3): targets y and z; b has one known item; c one item
    np.testing.assert_array_equal(ex.item, [1, 2])
    np.testing.assert_array_equal(ex.target, [2.0, 3.0])
    np.testing.assert_array_equal(ex.history, [[-1, 0], [0, 1]])
    np.testing.assert_array_equal(ex.engagement, [[0.0, 1.0], [1.0, 2.0]])


def test_save_load_roundtrip(tmp_path) -> None:
    item_ids, emb, data, _ = _synthetic(300, seed=1)
    config = CriticConfig(hidden=16, epochs=2, history_len=5)
    critic, _ = train_critic(
        data.subset(np.arange(200)), data.subset(np.arange(200, 300)), item_ids, emb, config
    )
    save_critic(critic, tmp_path)
    loaded = load_critic(tmp_path)
    a = critic.predict(data.history[:20], data.engagement[:20], data.item[:20])
    b = loaded.predict(data.history[:20], data.engagement[:20], data.item[:20])
    np.testing.assert_allclose(a[0], b[0]) and np.testing.assert_allclose(a[1], b[1])
    assert loaded.config == config and loaded.item_ids == item_ids


def test_config_validation() -> None:
    with pytest.raises(FlexBenchError, match="unknown critic option"):
        CriticConfig.from_options({"hiden": 3})
    with pytest.raises(FlexBenchError, match="dropout"):
        CriticConfig(dropout=1.5)
    assert CriticConfig.from_options({"epochs": 3}, seed=4) == CriticConfig(epochs=3, seed=4)
    with pytest.raises(FlexBenchError, match="no critic checkpoint"):
        load_critic(__import__("pathlib").Path("/nonexistent/critic"))


def test_train_critic_command_on_mock(data_root, capsys) -> None:
    import json

    from flexbench.cli.critic import train_critic_command
    from flexbench.trainers import TrainRequest

    out = data_root / "ckpt"
    request = TrainRequest(
        method="critic", dataset="mock", needs=("interest",), out_dir=out, options={"epochs": 3, "hidden": 32}
    )
    assert train_critic_command(request) == out
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and len(report["epochs"]) == 3 and 1 <= report["best_epoch"] <= 3
    assert set(report["test"]) == {"mse", "mae", "pearson_mean", "pearson_var", "n"}
    assert "Pearson(mean)" in capsys.readouterr().out
    stamp = (out / "critic.pt").stat().st_mtime_ns
    train_critic_command(request)  # resume: same data and config -> reused, not retrained
    assert (out / "critic.pt").stat().st_mtime_ns == stamp
    assert "reusing" in capsys.readouterr().out
    assert load_critic(out).config.hidden == 32
