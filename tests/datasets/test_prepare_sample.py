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
