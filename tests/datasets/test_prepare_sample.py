"""``prepare_sample``: what ``open_dataset`` calls on a fresh clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flexbench.datasets.prepare import prepare_sample
from flexbench.errors import FlexBenchError


def test_prepare_sample_names(tmp_path: Path) -> None:
    ds = prepare_sample("kuairec-dense", tmp_path, encoder="hash", cache=tmp_path / "emb")
    assert (ds.name, ds.dataset, ds.variant) == ("kuairec-dense", "kuairec", "dense")
    assert ds.meta["config"]["sample"] is True
    with pytest.raises(FlexBenchError, match="no bundled sample"):
        prepare_sample("mock", tmp_path)


@pytest.mark.slow
def test_open_dataset_auto_prepares_every_sample_with_minilm(tmp_path: Path, data_root: Path) -> None:
    from flexbench.catalog import open_dataset

    for name in ("kuairec", "kuairec-dense", "ml-1m", "esci"):
        ds = open_dataset(name, tmp_path)
        ids, emb = ds.item_embeddings()
        assert emb.shape == (len(ids), 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
        assert ds.instances("test")
    assert list((data_root / "cache" / "embeddings").glob("all-MiniLM-L6-v2-*.npy"))


def test_open_dataset_reprepares_stale_samples_and_refuses_stale_real_data(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from flexbench import catalog
    from flexbench.datasets import prepare as prepare_module
    from flexbench.instances import PROTOCOL_VERSION
    from flexbench.prepared import DatasetNotPrepared

    ds = prepare_sample("esci", tmp_path, encoder="hash", cache=tmp_path / "emb")
    assert ds.protocol_version == PROTOCOL_VERSION
    assert catalog.open_dataset("esci", tmp_path).fingerprint == ds.fingerprint
    meta = json.loads((ds.root / "meta.json").read_text())
    (ds.root / "meta.json").write_text(json.dumps({**meta, "protocol_version": None}))   # as protocol 1 wrote it
    calls = []
    monkeypatch.setattr(prepare_module, "prepare_sample", lambda name, out_root: calls.append(name) or ds)
    assert catalog.open_dataset("esci", tmp_path) is ds and calls == ["esci"]
    (ds.root / "meta.json").write_text(json.dumps({**meta, "protocol_version": None,
                                                   "config": {**meta["config"], "sample": False}}))
    with pytest.raises(DatasetNotPrepared, match="protocol 1"):
        catalog.open_dataset("esci", tmp_path)


def test_protocol_version_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    from flexbench.prepared import _fingerprint

    ds = prepare_sample("esci", tmp_path, encoder="hash", cache=tmp_path / "emb")
    assert _fingerprint(ds.root, ds.protocol_version) == ds.fingerprint
    assert _fingerprint(ds.root, 1) != ds.fingerprint != _fingerprint(ds.root, None)


def test_prepare_and_build_configs_share_one_set_of_size_defaults() -> None:
    from dataclasses import fields

    from flexbench.datasets.prepare import PrepareConfig
    from flexbench.datasets.sequential import BuildConfig
    from flexbench.instances import InstanceSizes

    sizes = {f.name for f in fields(InstanceSizes)}
    assert issubclass(PrepareConfig, InstanceSizes) and issubclass(BuildConfig, InstanceSizes)
    cfg = PrepareConfig("ml-1m", n_test=7)
    assert cfg.build_config().sizes() == cfg.sizes() and cfg.sizes()["n_test"] == 7
    assert {k: v for k, v in cfg.sizes().items() if k != "n_test"} == {
        k: v for k, v in InstanceSizes().sizes().items() if k != "n_test"} and sizes == set(cfg.sizes())


def test_a_prepared_sample_whose_bundled_files_changed_is_prepared_again(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A generator change (new bundled sample files) reaches users who prepared the old sample."""
    import shutil

    from flexbench import catalog
    from flexbench.datasets import prepare as prepare_module

    source = tmp_path / "sample-esci"
    shutil.copytree(prepare_module.bundled_sample_dir("esci"), source)
    monkeypatch.setattr(prepare_module, "bundled_sample_dir", lambda dataset: source)
    root = tmp_path / "prepared"
    first = prepare_sample("esci", root, encoder="hash", cache=tmp_path / "emb")
    assert first.meta["config"]["source_digest"] == prepare_module.source_digest(source)
    assert prepare_module.sample_is_current(first)
    assert prepare_sample("esci", root, encoder="hash", cache=tmp_path / "emb").fingerprint == first.fingerprint
    victim = next(p for p in sorted(source.rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"\n")  # the bundled sample changed
    assert not prepare_module.sample_is_current(first)
    calls = []
    monkeypatch.setattr(prepare_module, "prepare_sample", lambda name, out_root: calls.append(name) or first)
    catalog.open_dataset("esci", root)
    assert calls == ["esci"]
