"""Golden files: the Markdown rendered from the fixed store is pinned byte for byte.

Regenerate after an intended change with ``FLEXBENCH_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from table_fixtures import build_checkpoints, build_fixed_store

from flexbench.tables.build import render_outputs

GOLDEN = Path(__file__).parent / "golden"
PINNED = ("table1.md", "table2.md", "table3.md", "table7.md", "table9.md", "critic.md", "figures.md", "figure2.md")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("golden")
    out = root / "out"
    render_outputs(build_fixed_store(root / "results"), out, checkpoints=build_checkpoints(root / "ckpt"),
                   html=False)
    return out


@pytest.mark.parametrize("name", PINNED)
def test_markdown_matches_golden(name: str, rendered: Path) -> None:
    text = (rendered / name).read_text(encoding="utf-8")
    golden = GOLDEN / name
    if os.environ.get("FLEXBENCH_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"{name} differs from {golden}"
