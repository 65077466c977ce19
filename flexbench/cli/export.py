"""``flexbench export`` (thin handler): stored runs as TREC run/qrels files, JSON Lines and metric tables.

Examples::

    flexbench export --out exports/                                  # every stored run, every format
    flexbench export bert4rec --dataset ml-1m --need interest --out exports/ --what run,qrels
    flexbench export --dataset mock --what metrics --metrics-format csv --out exports/

Formats and the gain -> grade mapping of the qrels: :mod:`flexbench.export`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flexbench.errors import FlexBenchError


def register(app: typer.Typer) -> None:
    """Add the export command to ``app``."""

    @app.command("export")
    def export(
        ranker: Annotated[str | None, typer.Argument(help="Stored run label (default: every stored run).")] = None,
        out: Annotated[Path, typer.Option(help="Output directory.")] = Path("exports"),
        dataset: Annotated[str | None, typer.Option(help="Only runs on this dataset.")] = None,
        need: Annotated[str | None, typer.Option(help="Only runs of this need.")] = None,
        split: Annotated[str | None, typer.Option(help="Only runs of this split.")] = None,
        what: Annotated[str, typer.Option(help="Comma list of run, qrels, jsonl, metrics.")] = "run,qrels,jsonl,metrics",
        metrics_format: Annotated[str, typer.Option(help="Per-instance metrics as parquet or csv.")] = "parquet",
        scale: Annotated[int, typer.Option(help="qrels grade = round(scale * gain) for float-gain needs.")] = 100,
        header: Annotated[bool, typer.Option(help="Write the '#' header stating the grade mapping in qrels.")] = True,
        results: Annotated[Path | None, typer.Option(help="Result store (default <data>/results).")] = None,
    ) -> None:
        """Export stored runs: TREC run files, qrels, JSON Lines and per-instance metrics."""
        from rich.console import Console

        from flexbench.export import ExportPart, export_runs
        from flexbench.results import ResultStore

        try:
            parts = [ExportPart(p.strip()) for p in what.split(",") if p.strip()]
        except ValueError:
            raise FlexBenchError(f"--what takes a comma list of {', '.join(p.value for p in ExportPart)}; "
                                 f"got {what!r}") from None
        store = ResultStore(results)
        runs = [r for r in store.load_runs()
                if (ranker is None or r.key.ranker == ranker) and (dataset is None or r.key.dataset == dataset)
                and (need is None or r.key.need == need) and (split is None or r.key.split == split)]
        if not runs:
            raise FlexBenchError(f"no stored run under {store.root} matches; `flexbench leaderboard` lists them")
        written = export_runs(store, runs, out, parts=parts, metrics_format=metrics_format, scale=scale,
                              header=header)
        console = Console(soft_wrap=True, highlight=False)
        for path in written:
            console.print(f"wrote {path}")
        console.print(f"{len(runs)} runs exported to {out}/")
