"""A deep ensemble of critics: a predictive variance that includes the critic's own error.

One critic's log-variance head learns the noise of the labels it was fitted on
(aleatoric). Where it must extrapolate (users and items rarely observed
together) its error is larger than that noise and the head does not know it. A
deep ensemble (Lakshminarayanan, Pritzel and Blundell, NeurIPS 2017) of ``M``
critics trained from different seeds (initialisation and the 8:1:1 split of
:func:`flexbench.train.signal.critic_fit.fit_critic`) is a uniform mixture whose
moments are::

    mu(x, v) = 1/M sum_m mu_m(x, v)
    s2(x, v) = 1/M sum_m s2_m(x, v)  +  1/M sum_m (mu_m(x, v) - mu(x, v))^2
               (noise the members agree on)  (their disagreement: the epistemic part)

Layout: ``<dir>/ensemble.json`` (``{"members": M}``) and one critic directory
``<dir>/member-<m>`` per member, each as :func:`~flexbench.train.signal.critic.save_critic`
writes it. :func:`load_critic_any` opens a single critic or an ensemble, so a
gain provider reads either (``flexbench.train.signal.gains.CriticImputer``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flexbench.errors import FlexBenchError

ENSEMBLE_FILE = "ensemble.json"


class CriticEnsemble:
    """``M`` critics over the same items, predicting the mixture's mean and variance (module docstring)."""

    def __init__(self, members: Sequence[Any]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one critic")
        if any(m.item_ids != members[0].item_ids for m in members):
            raise FlexBenchError("the critics of an ensemble must be trained on the same items")
        self.members = list(members)

    @property
    def item_index(self) -> dict[str, int]:
        """Item ID -> row of the item tower (shared by the members)."""
        return self.members[0].item_index

    @property
    def config(self) -> Any:
        """The first member's :class:`~flexbench.train.signal.critic.CriticConfig` (history length etc.)."""
        return self.members[0].config

    def predict(self, history: np.ndarray, engagement: np.ndarray,
                item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mixture mean and variance ``[N]`` on the value scale."""
        preds = [m.predict(history, engagement, item) for m in self.members]
        means = np.stack([p[0] for p in preds])
        noise = np.stack([p[1] for p in preds]).mean(0)
        return means.mean(0), noise + means.var(0)


def member_dir(out: Path, m: int) -> Path:
    """Directory of member ``m`` of the ensemble in ``out``."""
    return Path(out) / f"member-{m}"


def is_ensemble(path: Path) -> bool:
    """Whether ``path`` holds an ensemble (its ``ensemble.json``)."""
    return (Path(path) / ENSEMBLE_FILE).exists()


def load_critic_any(path: Path) -> Any:
    """A :class:`~flexbench.train.signal.critic.Critic` or, where ``path`` holds one, a :class:`CriticEnsemble`."""
    from flexbench.train.signal.critic import load_critic

    path = Path(path)
    if not is_ensemble(path):
        return load_critic(path)
    try:
        count = int(json.loads((path / ENSEMBLE_FILE).read_text())["members"])
    except (ValueError, KeyError, TypeError) as err:
        raise FlexBenchError(f"{path / ENSEMBLE_FILE} is not an ensemble description ({err}); "
                             "train the ensemble again") from None
    return CriticEnsemble([load_critic(member_dir(path, m)) for m in range(count)])


def fit_ensemble(dataset: Any, config: Any, out: Path, members: int, *, resume: bool = True,
                 console: Any = None) -> list[Any]:
    """Train ``members`` critics with seeds ``config.seed + m`` into ``out`` and describe the ensemble.

    Each member is a :func:`~flexbench.train.signal.critic_fit.fit_critic` run
    (resumable on its own); ``ensemble.json`` is written last, so an interrupted
    fit is never read as a complete ensemble.
    """
    from flexbench.train.signal.critic_fit import fit_critic

    if members < 1:
        raise FlexBenchError(f"an ensemble needs at least one member, got {members}")
    out = Path(out)
    fits = [fit_critic(dataset, dataclasses.replace(config, seed=config.seed + m), member_dir(out, m),
                       resume=resume, console=console) for m in range(members)]
    (out / ENSEMBLE_FILE).write_text(json.dumps({"members": members}))
    return fits
