"""The uncertainty-aware interaction critic (paper Appendix G, SPEC 6).

Two towers. The user tower is an MLP with ReLU over the engagement-weighted mean
of the history item embeddings, ``u_bar = sum_j w_j e_j / sum_j w_j`` with
``w_j = max(engagement_j, 0)`` (uniform when every weight is 0), concatenated
with the user's standardised mean history engagement (the weighted mean alone
loses the user's engagement level, the strongest single predictor of watch
ratio; ``user_stats=False`` drops it). The candidate tower is the fixed item
embedding ``v`` of the frozen retriever. The user tower maps into the item
embedding space, the interaction network reads ``[u, v, u*v, |u-v|]`` through
LayerNorm, hidden size 256, dropout 0.05, and two heads give the mean and the
log-variance of the (standardised) engagement.

Loss: beta-NLL (Seitzer et al. 2022, "On the pitfalls of heteroscedastic
uncertainty estimation with probabilistic neural networks")::

    L = 0.5 * ((y - mu)^2 / s2 + log s2) * stopgrad(s2)^beta,   beta = 0.5

Training keeps the epoch with the best validation MSE. Reports MSE, MAE,
Pearson(mu, y) and Pearson(s2, (y - mu)^2) on the original value scale.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flexbench.errors import FlexBenchError
from flexbench.options import parse_options
from flexbench.paths import CRITIC_FILE, CRITIC_REPORT
from flexbench.train.signal.critic_data import PAD, CriticExamples

CHECKPOINT_NAME, REPORT_NAME = CRITIC_FILE, CRITIC_REPORT  # layout: flexbench.paths.critic_dir
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CriticConfig:
    """Critic architecture and training settings (defaults: paper Appendix G).

    ``threads`` is torch's intra-op thread count while training (restored
    afterwards): the critic's small matrix products gain little from threads and
    slow down sharply when cores are shared, so 1 is the default.
    """

    hidden: int = 256
    dropout: float = 0.05
    beta: float = 0.5
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    history_len: int = 10
    user_stats: bool = True
    log_var_bounds: tuple[float, float] = (-12.0, 8.0)
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "hidden": self.hidden >= 1,
            "dropout": 0 <= self.dropout < 1,
            "beta": 0 <= self.beta <= 1,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "history_len": self.history_len >= 1,
            "threads": self.threads >= 1,
            "log_var_bounds": self.log_var_bounds[0] < self.log_var_bounds[1],
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise FlexBenchError(
                f"invalid critic option(s) {', '.join(bad)}: hidden, epochs, batch_size, "
                f"history_len, threads >= 1; 0 <= dropout < 1; 0 <= beta <= 1; lr > 0"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **overrides: Any) -> CriticConfig:
        """Build from ``--set``/``--config`` options, converted by field type; unknown keys raise."""
        return cls(**parse_options(cls, {**options, **overrides}, what="critic option"))


@dataclass(frozen=True)
class CriticReport:
    """Critic quality on held-out interactions (original value scale)."""

    mse: float
    mae: float
    pearson_mean: float
    pearson_var: float
    n: int = 0


class Critic(nn.Module):
    """Two-tower critic over fixed item embeddings; see the module docstring."""

    def __init__(
        self,
        item_ids: Sequence[str],
        item_embeddings: np.ndarray,
        config: CriticConfig,
        target_mean: float = 0.0,
        target_std: float = 1.0,
    ) -> None:
        super().__init__()
        emb = torch.as_tensor(np.asarray(item_embeddings, dtype=np.float32))
        if emb.ndim != 2 or emb.shape[0] != len(item_ids):
            raise ValueError(f"{len(item_ids)} item IDs for embeddings of shape {tuple(emb.shape)}")
        self.config = config
        self.item_ids = list(item_ids)
        self.item_index = {item: n for n, item in enumerate(self.item_ids)}
        self.register_buffer("item_emb", emb)
        self.register_buffer("y_mean", torch.tensor(float(target_mean)))
        self.register_buffer("y_std", torch.tensor(float(target_std)))
        dim, hidden = emb.shape[1], config.hidden
        self.user_tower = nn.Sequential(
            nn.Linear(dim + int(config.user_stats), hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, dim),
        )
        self.interaction = nn.Sequential(
            nn.LayerNorm(4 * dim),
            nn.Linear(4 * dim, hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
        )
        self.mean_head = nn.Linear(hidden, 1)
        self.log_var_head = nn.Linear(hidden, 1)

    def user_features(self, history: torch.Tensor, engagement: torch.Tensor) -> torch.Tensor:
        """``[N, D (+1)]``: engagement-weighted mean history embedding (+ standardised mean engagement)."""
        mask = (history != PAD).to(self.item_emb.dtype)
        emb = self.item_emb[history.clamp(min=0)]
        weights = engagement.clamp(min=0) * mask
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, mask)
        denom = weights.sum(1, keepdim=True).clamp(min=1e-12)
        pooled = (weights.unsqueeze(-1) * emb).sum(1) / denom
        if not self.config.user_stats:
            return pooled
        mean_eng = (engagement * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return torch.cat([pooled, (mean_eng - self.y_mean) / self.y_std], dim=1)

    def forward(
        self, history: torch.Tensor, engagement: torch.Tensor, item: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised ``(mu, log s2)``, each ``[N]``, for history rows ``[N, L]`` and item rows ``[N]``."""
        u = self.user_tower(self.user_features(history, engagement))
        v = self.item_emb[item]
        h = self.interaction(torch.cat([u, v, u * v, (u - v).abs()], dim=1))
        lo, hi = self.config.log_var_bounds
        return self.mean_head(h).squeeze(1), self.log_var_head(h).squeeze(1).clamp(lo, hi)

    @torch.no_grad()
    def predict(
        self, history: np.ndarray, engagement: np.ndarray, item: np.ndarray, batch_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance ``[N]`` on the original value scale (eval mode, no gradient).

        Runs with ``config.threads`` torch threads (see :class:`CriticConfig`): a
        call per training instance is tiny, and extra threads on shared cores
        make it many times slower.
        """
        was_training = self.training
        self.eval()
        means, variances = [], []
        with torch_threads(self.config.threads):
            for start in range(0, len(item), batch_size):
                part = slice(start, start + batch_size)
                mu, log_var = self(
                    torch.as_tensor(history[part]),
                    torch.as_tensor(engagement[part], dtype=torch.float32),
                    torch.as_tensor(item[part]),
                )
                means.append(self.y_mean + self.y_std * mu)
                variances.append(self.y_std**2 * log_var.exp())
        self.train(was_training)
        if not means:
            return np.zeros(0), np.zeros(0)
        return torch.cat(means).double().numpy(), torch.cat(variances).double().numpy()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def beta_nll_loss(
    mu: torch.Tensor, log_var: torch.Tensor, y: torch.Tensor, beta: float = 0.5
) -> torch.Tensor:
    """Mean beta-NLL ``0.5 * ((y - mu)^2 / s2 + log s2) * stopgrad(s2)^beta`` (Seitzer et al. 2022).

    Per element, with ``w = s2^beta`` held constant: ``dL/dmu = -w (y - mu) / s2`` and
    ``dL/dlog s2 = 0.5 w (1 - (y - mu)^2 / s2)``; beta = 0 is the Gaussian NLL.
    """
    nll = 0.5 * ((y - mu) ** 2 * torch.exp(-log_var) + log_var)
    if beta:
        nll = nll * torch.exp(beta * log_var).detach()
    return nll.mean()


def evaluate_critic(critic: Critic, examples: CriticExamples) -> CriticReport:
    """MSE, MAE, Pearson(mean, y) and Pearson(variance, squared error) on ``examples``."""
    mean, var = critic.predict(examples.history, examples.engagement, examples.item)
    y = examples.target.astype(np.float64)
    err = y - mean
    return CriticReport(
        mse=float(np.mean(err**2)) if len(y) else math.nan,
        mae=float(np.mean(np.abs(err))) if len(y) else math.nan,
        pearson_mean=_pearson(mean, y),
        pearson_var=_pearson(var, err**2),
        n=len(y),
    )


EpochCallback = Callable[[int, float, CriticReport], None]
"""Called after each epoch with (epoch, mean training loss, validation report)."""
ImproveCallback = Callable[[Critic, int, CriticReport], None]
"""Called when validation MSE improves, with the critic in its best state so far."""


def train_critic(
    train: CriticExamples,
    valid: CriticExamples,
    item_ids: Sequence[str],
    item_embeddings: np.ndarray,
    config: CriticConfig = CriticConfig(),
    *,
    on_epoch: EpochCallback | None = None,
    on_improve: ImproveCallback | None = None,
) -> tuple[Critic, int]:
    """Train with Adam on beta-NLL; return the critic at its best validation MSE and that epoch (1-based)."""
    if len(train) == 0 or len(valid) == 0:
        raise FlexBenchError(
            f"the critic needs training and validation examples (got {len(train)} and "
            f"{len(valid)}); use a dataset with more observed interactions"
        )
    with torch_threads(config.threads):
        return _fit(train, valid, item_ids, item_embeddings, config, on_epoch, on_improve)


def _fit(
    train: CriticExamples,
    valid: CriticExamples,
    item_ids: Sequence[str],
    item_embeddings: np.ndarray,
    config: CriticConfig,
    on_epoch: EpochCallback | None,
    on_improve: ImproveCallback | None,
) -> tuple[Critic, int]:
    torch.manual_seed(config.seed)
    target = train.target.astype(np.float64)
    critic = Critic(item_ids, item_embeddings, config, float(target.mean()), float(target.std() or 1.0))
    optimiser = torch.optim.Adam(critic.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    tensors = _tensors(train)
    best_state, best_epoch, best_mse = None, 0, math.inf
    for epoch in range(1, config.epochs + 1):
        loss = _train_epoch(critic, optimiser, tensors, rng.permutation(len(train)), config)
        report = evaluate_critic(critic, valid)
        if report.mse < best_mse:
            best_state, best_epoch, best_mse = copy.deepcopy(critic.state_dict()), epoch, report.mse
            if on_improve is not None:
                on_improve(critic, epoch, report)
        if on_epoch is not None:
            on_epoch(epoch, loss, report)
    if best_state is not None:
        critic.load_state_dict(best_state)
    critic.eval()
    return critic, best_epoch


def save_critic(critic: Critic, directory: Path) -> Path:
    """Write ``<directory>/critic.pt`` atomically (temporary file, then rename); return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CHECKPOINT_NAME
    tmp = path.with_suffix(".pt.tmp")
    config = asdict(critic.config) | {"log_var_bounds": list(critic.config.log_var_bounds)}
    torch.save(
        {
            "format_version": FORMAT_VERSION,
            "config": config,
            "item_ids": critic.item_ids,
            "state_dict": critic.state_dict(),
        },
        tmp,
    )
    os.replace(tmp, path)
    return path


def load_critic(path: Path) -> Critic:
    """Load a critic from ``critic.pt`` or the directory holding it (eval mode)."""
    path = Path(path)
    path = path / CHECKPOINT_NAME if path.is_dir() else path
    if not path.exists():
        raise FlexBenchError(
            f"no critic checkpoint at {path}; train one with `flexbench train critic --dataset D`"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise FlexBenchError(f"{path}: not a readable critic checkpoint ({type(err).__name__}: "
                             f"{str(err).splitlines()[0][:80]}); it is truncated or corrupt: retrain it with "
                             f"`flexbench train critic --dataset D`") from None
    if not isinstance(blob, dict) or blob.get("format_version") != FORMAT_VERSION:
        raise FlexBenchError(
            f"{path} has critic format {blob.get('format_version') if isinstance(blob, dict) else None}, "
            f"expected {FORMAT_VERSION}; "
            f"retrain the critic"
        )
    state = blob["state_dict"]
    critic = Critic(blob["item_ids"], state["item_emb"].numpy(), CriticConfig.from_options(blob["config"]))
    critic.load_state_dict(state)
    return critic.eval()


def _tensors(examples: CriticExamples) -> tuple[torch.Tensor, ...]:
    return (
        torch.as_tensor(examples.history),
        torch.as_tensor(examples.engagement, dtype=torch.float32),
        torch.as_tensor(examples.item),
        torch.as_tensor(examples.target, dtype=torch.float32),
    )


def _train_epoch(
    critic: Critic,
    optimiser: torch.optim.Optimizer,
    tensors: tuple[torch.Tensor, ...],
    order: np.ndarray,
    config: CriticConfig,
) -> float:
    critic.train()
    history, engagement, item, target = tensors
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        idx = torch.as_tensor(order[start : start + config.batch_size])
        mu, log_var = critic(history[idx], engagement[idx], item[idx])
        y = (target[idx] - critic.y_mean) / critic.y_std
        loss = beta_nll_loss(mu, log_var, y, config.beta)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or empty (undefined, not 0)."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])
