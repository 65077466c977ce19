"""The explicit table of trainable methods behind ``flexbench train METHOD``.

Each entry names a function ``train(request: TrainRequest) -> Path`` (the saved
checkpoint directory), imported lazily like the ranker registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexbench.options import lookup
from flexbench.train.methods import METHODS


@dataclass(frozen=True, slots=True)
class TrainRequest:
    """What the CLI passes to a trainer.

    ``needs`` holds one need for single-need training or all needs of the dataset
    for joint training. ``options`` come from ``--config FILE`` and ``--set k=v``
    and override the method's config defaults. ``out_dir`` is the checkpoint
    directory (default ``<data>/checkpoints/<method>/<dataset>/<needs>``).
    """

    method: str
    dataset: str
    needs: tuple[str, ...]
    out_dir: Path
    model: str | None = None
    seed: int = 0
    resume: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrainerEntry:
    """One trainable method: its name, where its train function lives, fixed options."""

    name: str
    target: str
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    per_need: bool = True  # False: need-agnostic; default checkpoint dir omits the needs tag

    def load(self) -> Callable[[TrainRequest], Path]:
        """Import the train function."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


_POLICY = "flexbench.train.run:train_policy"

TRAINERS: dict[str, TrainerEntry] = {e.name: e for e in (
    TrainerEntry("critic", "flexbench.cli.critic:train_critic_command",
                 "Uncertainty-aware critic (mean + log-variance, beta-NLL).", per_need=False),
    TrainerEntry("bert4rec", "baselines.bert4rec:train_command", "RecBole BERT4Rec on training sequences.",
                 per_need=False),
    *(TrainerEntry(m.name, _POLICY, m.description, {"method": m.name}) for m in METHODS.values()),
)}
"""Every trainable method by name; the policy rows are derived from :data:`flexbench.train.methods.METHODS`."""


def get_trainer(name: str) -> TrainerEntry:
    """Return the trainer ``name`` or raise with close matches."""
    return lookup(TRAINERS, name, what="training method")
