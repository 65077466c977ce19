"""Critic reports: the trainer's layout, the minimal top-level layout, incomplete and absent reports."""

from __future__ import annotations

import json
from pathlib import Path

from flexbench.tables.cells import CellStatus
from flexbench.tables.critic import critic_cells, load_critic_reports, report_path
from flexbench.tables.layout import CRITIC
from flexbench.tables.paper import load_paper_numbers


def _cells(root: Path) -> dict[tuple[str, str], object]:
    reports = load_critic_reports(root, CRITIC)
    return {(ds, c.metric): c for ds, c in critic_cells(reports, CRITIC, load_paper_numbers())}


def test_trainer_report_uses_the_test_split(fixed_checkpoints: Path) -> None:
    cells = _cells(fixed_checkpoints)
    assert cells["kuairec", "mse"].value == 0.41 and cells["kuairec", "mse"].paper == 0.328
    assert cells["ml-1m", "mse"].status is CellStatus.MISSING and cells["ml-1m", "mse"].paper is None


def test_minimal_and_incomplete_reports(tmp_path: Path) -> None:
    for dataset, data in (("kuairec", {"mse": 0.5, "mae": 0.6, "pearson_mean": 0.2, "pearson_var": None}),
                          ("ml-1m", {"complete": False, "valid": {"mse": 0.3}})):
        path = report_path(tmp_path, dataset)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(data), encoding="utf-8")
    cells = _cells(tmp_path)
    assert cells["kuairec", "mae"].value == 0.6
    assert cells["kuairec", "pearson_var"].status is CellStatus.MISSING  # undefined Pearson stored as null
    assert {cells["ml-1m", m].status for m in CRITIC.metrics} == {CellStatus.INCOMPLETE}
