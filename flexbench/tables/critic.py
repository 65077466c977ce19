"""Critic quality reports (paper Appendix G): ``<checkpoints>/critic/<dataset>/report.json``.

``flexbench train critic`` writes ``{"settings": {"fingerprint", "config", ...},
"complete", "best_epoch", "n_examples", "valid": {...}, "test": {"mse", "mae",
"pearson_mean", "pearson_var", "n"}}``; the table shows the held-out ``test``
metrics (the paper's 8:1:1 split). A report with the four metrics at the top
level (the documented minimal format) is read as well. A report of a run that
has not finished (``"complete": false``) is shown as incomplete, not as numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.tables.cells import Cell, CellStatus
from flexbench.tables.layout import CriticLayout
from flexbench.tables.paper import PaperNumbers


@dataclass(frozen=True, slots=True)
class CriticReport:
    """One dataset's critic report; ``path`` None when absent (relative to the checkpoints root)."""

    dataset: str
    metrics: Mapping[str, float]
    path: str | None
    provenance: Mapping[str, Any]
    complete: bool = True


def report_path(checkpoints: Path, dataset: str) -> Path:
    """Where the critic trainer writes the report of ``dataset``."""
    from flexbench.paths import CRITIC_REPORT, critic_dir

    return critic_dir(dataset, Path(checkpoints)) / CRITIC_REPORT


def _provenance(data: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    settings = data.get("settings") or {}
    config = settings.get("config") or {}
    prov = {"data": settings.get("fingerprint") or data.get("data_fingerprint"),
            "seed": config.get("seed", data.get("seed")), "best epoch": data.get("best_epoch"),
            "n": source.get("n")}
    return {k: v for k, v in prov.items() if v is not None}


def read_report(path: Path, layout: CriticLayout, dataset: str, root: Path) -> CriticReport:
    """Parse one report file (see the module docstring)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FlexBenchError(f"critic report {path} is not valid JSON ({err}); retrain with "
                             f"`flexbench train critic --dataset {dataset}`") from None
    source = data["test"] if isinstance(data.get("test"), dict) else data
    complete = bool(data.get("complete", True)) and (source is not data or "mse" in data)
    metrics = {m: float(source[m]) for m in layout.metrics
               if complete and isinstance(source.get(m), (int, float))}
    return CriticReport(dataset, metrics, path.relative_to(root).as_posix(), _provenance(data, source), complete)


def load_critic_reports(checkpoints: Path, layout: CriticLayout) -> tuple[CriticReport, ...]:
    """The report of every dataset of ``layout`` (absent ones with empty metrics and no path)."""
    out = []
    for dataset in layout.datasets:
        path = report_path(checkpoints, dataset)
        out.append(read_report(path, layout, dataset, Path(checkpoints)) if path.is_file()
                   else CriticReport(dataset, {}, None, {}))
    return tuple(out)


def critic_cells(reports: tuple[CriticReport, ...], layout: CriticLayout,
                 paper: PaperNumbers) -> list[tuple[str, Cell]]:
    """``(dataset, cell)`` for every column of the critic table, in display order."""
    out = []
    for rep in reports:
        for metric in layout.metrics:
            status = (CellStatus.OK if metric in rep.metrics else
                      CellStatus.INCOMPLETE if rep.path is not None and not rep.complete else CellStatus.MISSING)
            out.append((rep.dataset, Cell(metric, rep.metrics.get(metric),
                                          paper.get("critic", rep.dataset, "", "critic", metric), status)))
    return out
