"""Default locations of everything FlexBench writes, under one data root.

The root is ``$FLEXBENCH_DATA`` if set, else ``./data``. Nothing is created at
import time; callers create directories when they write.
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
