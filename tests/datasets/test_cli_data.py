"""The ``flexbench data`` commands end to end on the small samples."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flexbench.cli import app
from flexbench.prepared import PreparedDataset


def test_sample_then_prepare(tmp_path: Path, data_root: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["data", "sample", "esci", "--out", str(tmp_path / "esci")])
    assert out.exit_code == 0, out.output
    assert "wrote synthetic esci (small)" in out.output
    out = runner.invoke(app, ["data", "prepare", "esci", "--raw-dir", str(tmp_path / "esci"), "--encoder", "hash",
                              "--n-train", "20", "--n-test", "10", "--n-valid", "5"])
    assert out.exit_code == 0, out.output
    ds = PreparedDataset(data_root / "prepared" / "esci")
    assert ds.meta["n_instances"] == 35 and ds.meta["config"]["sample"] is False
    out = runner.invoke(app, ["data", "sample", "esci", "--scale", "huge"])
    assert out.exit_code != 0
