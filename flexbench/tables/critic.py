"""Critic quality reports (paper Appendix G): ``<checkpoints>/critic/<dataset>/report.json``.

The critic trainer writes ``{"mse", "mae", "pearson_mean", "pearson_var", ...}``;
the tables read the four metrics and any provenance fields stored beside them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.tables.layout import CriticLayout

PROVENANCE_KEYS = ("code_version", "data_fingerprint", "seed", "hardware", "epochs", "best_epoch")


@dataclass(frozen=True, slots=True)
class CriticReport:
    """One dataset's critic report, or its absence (``metrics`` empty, ``path`` None)."""

    dataset: str
    metrics: Mapping[str, float]
    path: str | None  # relative to the checkpoints root
    provenance: Mapping[str, Any]


def report_path(checkpoints: Path, dataset: str) -> Path:
    """Where the critic trainer writes the report of ``dataset``."""
    return Path(checkpoints) / "critic" / dataset / "report.json"


def load_critic_reports(checkpoints: Path, layout: CriticLayout) -> tuple[CriticReport, ...]:
    """The report of every dataset of ``layout`` (absent ones with empty metrics)."""
    out = []
    for dataset in layout.datasets:
        path = report_path(checkpoints, dataset)
        if not path.is_file():
            out.append(CriticReport(dataset, {}, None, {}))
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise FlexBenchError(f"critic report {path} is not valid JSON ({err}); retrain with "
                                 f"`flexbench train critic --dataset {dataset}`") from None
        metrics = {m: float(data[m]) for m in layout.metrics if isinstance(data.get(m), (int, float))}
        prov = {k: data[k] for k in PROVENANCE_KEYS if k in data}
        out.append(CriticReport(dataset, metrics, path.relative_to(checkpoints).as_posix(), prov))
    return tuple(out)
