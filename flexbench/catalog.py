"""Resolve a dataset name to a :class:`~flexbench.prepared.PreparedDataset`.

``mock`` is built in memory-cheap form on first use (see :mod:`flexbench.mock`).
The paper's datasets (``kuairec``, ``ml-1m``, ``esci``, and ``kuairec-dense``)
are read from ``<data>/prepared/<name>``; when that is missing and
``auto_prepare`` is set, the bundled synthetic sample is prepared first, so the
README demo runs on a fresh clone.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from flexbench.errors import FlexBenchError
from flexbench.paths import prepared_dir
from flexbench.prepared import DatasetNotPrepared, PreparedDataset

DATASETS: tuple[str, ...] = ("kuairec", "ml-1m", "esci")
VARIANTS: tuple[str, ...] = ("kuairec-dense",)
MOCK = "mock"


def known_names() -> tuple[str, ...]:
    """Every dataset name the CLI accepts."""
    return (*DATASETS, *VARIANTS, MOCK)


def open_dataset(name: str, root: Path | None = None, *, auto_prepare: bool = True) -> PreparedDataset:
    """Open prepared dataset ``name`` under ``root`` (default ``<data>/prepared``)."""
    if name not in known_names():
        raise FlexBenchError(f"unknown dataset {name!r}. Known: {', '.join(known_names())}.")
    root = Path(root) if root is not None else prepared_dir()
    path = root / name
    if name == MOCK:
        from flexbench.mock import write_mock_dataset

        return PreparedDataset(path) if (path / "meta.json").exists() else write_mock_dataset(path)
    if (path / "meta.json").exists():
        return PreparedDataset(path)
    if not auto_prepare:
        raise DatasetNotPrepared(f"dataset {name!r} is not prepared under {root}; "
                                 f"run `flexbench data prepare {name}`")
    prepare = importlib.import_module("flexbench.datasets.prepare")
    return prepare.prepare_sample(name, out_root=root)
