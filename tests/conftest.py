"""Shared fixtures: an isolated data root and the built-in mock dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexbench.mock import write_mock_dataset
from flexbench.prepared import PreparedDataset


@pytest.fixture(scope="session")
def mock_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """The deterministic mock dataset (120 users, K = 30), written once per session."""
    return write_mock_dataset(tmp_path_factory.mktemp("prepared") / "mock")


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$FLEXBENCH_DATA`` at a fresh temporary directory."""
    monkeypatch.setenv("FLEXBENCH_DATA", str(tmp_path))
    return tmp_path
