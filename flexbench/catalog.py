"""Resolve a dataset name to a :class:`~flexbench.prepared.PreparedDataset`.

``mock`` is built in memory-cheap form on first use (see :mod:`flexbench.mock`).
The paper's datasets (``kuairec``, ``ml-1m``, ``esci``, and ``kuairec-dense``)
are read from ``<data>/prepared/<name>``; when that is missing and
``auto_prepare`` is set, the bundled synthetic sample is prepared first, so the
README demo runs on a fresh clone. A dataset prepared under an older protocol
(:data:`flexbench.instances.PROTOCOL_VERSION`) is re-prepared when it is the bundled
sample and refused otherwise, so old and new protocols never mix.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from flexbench.instances import PROTOCOL_VERSION
from flexbench.locks import dataset_lock, read_marker, replace_dir
from flexbench.paths import prepared_dir
from flexbench.prepared import DatasetNotPrepared, PreparedDataset
from flexbench.vocabulary import PAPER_DATASETS

DATASETS: tuple[str, ...] = PAPER_DATASETS
VARIANTS: tuple[str, ...] = ("kuairec-dense",)
MOCK = "mock"


def known_names() -> tuple[str, ...]:
    """Every dataset name the CLI accepts."""
    return (*DATASETS, *VARIANTS, MOCK)


def check_dataset(name: str) -> str:
    """``name`` if it is a known dataset name, else a one-line error with close matches."""
    from flexbench.options import lookup

    return lookup({n: n for n in known_names()}, name, what="dataset")


def open_dataset(name: str, root: Path | None = None, *, auto_prepare: bool = True) -> PreparedDataset:
    """Open prepared dataset ``name`` under ``root`` (default ``<data>/prepared``).

    Looks under the dataset's shared lock (:mod:`flexbench.locks`): while a
    prepare of ``name`` runs, this waits for it. The bundled sample is prepared
    only where nothing else is: a dataset whose last prepare was killed (its
    marker is left) or a directory without ``meta.json`` is an error naming the
    command to rerun, never a silent switch to the sample.
    """
    check_dataset(name)
    root = Path(root) if root is not None else prepared_dir()
    path = root / name
    if name == MOCK:
        return _open_mock(root)
    with dataset_lock(root, name).shared():
        killed = read_marker(root, name)
        if killed is not None and not (auto_prepare and killed.get("sample")):
            raise DatasetNotPrepared(
                f"the last prepare of dataset {name!r} under {root} (pid {killed.get('pid', '?')}, from "
                f"{killed.get('source', 'an unknown source')}) did not finish; run "
                f"`{killed.get('command') or f'flexbench data prepare {name}'}` again")
        if killed is None and (path / "meta.json").exists():
            dataset = PreparedDataset(path)
            current = importlib.import_module("flexbench.datasets.prepare").sample_is_current
            if dataset.protocol_version == PROTOCOL_VERSION and (not auto_prepare or current(dataset)):
                return dataset  # a prepared sample whose bundled files changed is prepared again
            if not (auto_prepare and dataset.meta.get("config", {}).get("sample")):
                command = dataset.meta.get("config", {}).get("command") or f"flexbench data prepare {name}"
                raise DatasetNotPrepared(f"dataset {name!r} under {root} was prepared under protocol "
                                         f"{dataset.protocol_version or 1}, this FlexBench uses protocol "
                                         f"{PROTOCOL_VERSION} (docs/PROTOCOL.md); run `{command}` again")
        elif killed is None and path.is_dir() and any(path.iterdir()):
            raise DatasetNotPrepared(f"{path} holds no meta.json (an unfinished prepare of an older FlexBench?); "
                                     f"run `flexbench data prepare {name}` again, with --raw-dir if it was not the sample")
        elif killed is None and not auto_prepare:
            raise DatasetNotPrepared(f"dataset {name!r} is not prepared under {root}; "
                                     f"run `flexbench data prepare {name}`")
    prepare = importlib.import_module("flexbench.datasets.prepare")
    return prepare.prepare_sample(name, out_root=root)


def _open_mock(root: Path) -> PreparedDataset:
    """The mock dataset under ``root``, written (aside, then moved into place) on first use."""
    from flexbench.mock import write_mock_dataset

    path = root / MOCK
    with dataset_lock(root, MOCK).shared():
        if (path / "meta.json").exists():
            return PreparedDataset(path)
    with dataset_lock(root, MOCK).exclusive(wait=True):
        if not (path / "meta.json").exists():
            tmp = root / f".{MOCK}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            write_mock_dataset(tmp)
            replace_dir(tmp, path)
        return PreparedDataset(path)
