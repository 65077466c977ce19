"""Fixtures of the table tests: the fixed store and checkpoints of ``table_fixtures``."""

from __future__ import annotations

from pathlib import Path

import pytest
from table_fixtures import build_checkpoints, build_fixed_store

from flexbench.results import ResultStore


@pytest.fixture()
def fixed_store(tmp_path: Path) -> ResultStore:
    """The fixed store under a fresh temporary directory."""
    return build_fixed_store(tmp_path / "results")


@pytest.fixture()
def fixed_checkpoints(tmp_path: Path) -> Path:
    """The fixed checkpoints directory under a fresh temporary directory."""
    return build_checkpoints(tmp_path / "checkpoints")
