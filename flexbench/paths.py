"""Default locations of everything FlexBench writes, under one data root.

The root is ``$FLEXBENCH_DATA`` if set, else ``./data``. Nothing is created at
import time; callers create directories when they write. This module owns the
layout of checkpoints (policies, BERT4Rec, the critic); the prepared-dataset
layout belongs to :mod:`flexbench.prepared` and the result layout to
:mod:`flexbench.results`.

``<data>/checkpoints/``::

    <method>/<dataset>/<needs tag>/   a trained policy (tag: ``interest``, ``all``, ``interest+trend``)
    bert4rec/<dataset>/               need-agnostic trainers: no needs tag
    critic/<dataset>/critic.pt        the critic (CRITIC_FILE) and its report (CRITIC_REPORT)
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """Root of generated data: ``$FLEXBENCH_DATA`` or ``./data``."""
    return Path(os.environ.get("FLEXBENCH_DATA", "data"))


def raw_dir() -> Path:
    """Where ``flexbench data fetch`` puts official archives and files."""
    return data_root() / "raw"


def prepared_dir() -> Path:
    """Where prepared datasets live (one directory per dataset name)."""
    return data_root() / "prepared"


def results_dir() -> Path:
    """Where the result store keeps runs."""
    return data_root() / "results"


def cache_dir() -> Path:
    """Caches: embeddings, converted models, API responses, RecBole files."""
    return data_root() / "cache"


def checkpoints_dir() -> Path:
    """Trained models (critic, BERT4Rec, policies)."""
    return data_root() / "checkpoints"


CRITIC_FILE = "critic.pt"
CRITIC_REPORT = "report.json"


def checkpoint_dir(method: str, dataset: str, needs_tag: str | None = None, root: Path | None = None) -> Path:
    """``<checkpoints>/<method>/<dataset>[/<needs_tag>]``: the default output directory of a trainer."""
    base = (root if root is not None else checkpoints_dir()) / method / dataset
    return base / needs_tag if needs_tag else base


def critic_dir(dataset: str, checkpoints: Path | None = None) -> Path:
    """``<checkpoints>/critic/<dataset>/``: the critic of ``dataset`` (:data:`CRITIC_FILE`) and its report."""
    return checkpoint_dir("critic", dataset, root=checkpoints)
