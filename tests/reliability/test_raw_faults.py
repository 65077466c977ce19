"""Every raw-data fault class of issue 16 (item 4): a one-line error naming file and line, or a counted repair.

The faults (``raw_faults.FAULTS``) edit copies of the bundled samples; each is
prepared with the hash encoder and few instances. A repair must be printed,
recorded in ``meta.json`` and, where the fault only adds redundant rows, leave
the prepared data byte-identical to a prepare of the untouched sample.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from raw_faults import FAULTS, Fault, copy_sample, data_folder
from rich.console import Console

from flexbench.datasets.prepare import PrepareConfig, prepare
from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset

SMALL = {"n_train": 40, "n_valid": 10, "n_test": 10}


def _prepare(dataset: str, raw: Path, out: Path, cache: Path) -> tuple[PreparedDataset, str]:
    buffer = io.StringIO()
    ds = prepare(PrepareConfig(dataset, encoder="hash", **SMALL), raw, out, cache=cache,
                 console=Console(file=buffer, width=400))
    return ds, buffer.getvalue()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PreparedDataset]:
    root = tmp_path_factory.mktemp("clean")
    return {name: _prepare(name, copy_sample(name, root / f"raw-{name}"), root / f"out-{name}", root / "emb")[0]
            for name in ("kuairec", "ml-1m", "esci")}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_an_error_or_a_counted_repair(fault: Fault, clean: dict[str, PreparedDataset],
                                               tmp_path: Path) -> None:
    raw = copy_sample(fault.dataset, tmp_path / "raw")
    fault.mutate(data_folder(fault.dataset, raw))
    if not fault.repair:
        with pytest.raises(FlexBenchError, match=fault.expect) as err:
            _prepare(fault.dataset, raw, tmp_path / "out", tmp_path / "emb")
        assert "\n" not in str(err.value)
        assert not (tmp_path / "out" / fault.dataset).exists()  # nothing half-written is left
        return
    ds, printed = _prepare(fault.dataset, raw, tmp_path / "out", tmp_path / "emb")
    assert any(re.search(fault.expect, note) for note in ds.meta["config"]["repairs"]), \
        ds.meta["config"]["repairs"]
    assert "repaired: " in printed
    if fault.same_as_clean:
        assert ds.meta["files"] == clean[fault.dataset].meta["files"]
        assert ds.instances() == clean[fault.dataset].instances()


def test_clean_samples_need_no_repair(clean: dict[str, PreparedDataset]) -> None:
    assert all(ds.meta["config"]["repairs"] == [] for ds in clean.values())
