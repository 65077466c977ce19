"""``flexbench tables`` (issue: paper tables): paper tables, figures and HTML from stored results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def register(app: typer.Typer) -> None:
    """Add the tables command to ``app``."""

    @app.command("tables")
    def tables(
        out: Annotated[Path, typer.Option(help="Output directory.")] = Path("leaderboards"),
        results: Annotated[Path | None, typer.Option(help="Result store (default <data>/results).")] = None,
        checkpoints: Annotated[Path | None, typer.Option(
            help="Critic reports and training logs (default <data>/checkpoints).")] = None,
        paper_setting: Annotated[bool, typer.Option(
            "--paper-setting",
            help="Use only runs at the paper's scale (5,000/1,000 instances, K=30, Qwen2.5-3B-Instruct) "
                 "where a GPU allows; on CPU say what would run and fall back to the bundled sample.")] = False,
        allow_dirty: Annotated[bool, typer.Option(
            "--allow-dirty", help="Write the committed leaderboards/ from uncommitted code, under a banner.")] = False,
    ) -> None:
        """Write the paper's Tables 1-3 and 6-9, the critic table, Figures 3-4 and index.html.

        Everything comes from stored results; a cell without a stored run is shown as
        missing. Rebuild everything with `flexbench eval --all` then `flexbench tables`.
        """
        from rich.console import Console

        from flexbench.tables.build import render_outputs
        from flexbench.tables.setting import plan_paper_setting
        from flexbench.tables.store import open_store

        console = Console(soft_wrap=True, highlight=False)
        store = open_store(results)
        if paper_setting:
            store, lines = plan_paper_setting(store, _has_cuda())
            for line in lines:
                console.print(line)
        n_runs = len(store.load_runs())
        if n_runs == 0:
            console.print("[yellow]No stored runs: every cell is shown as missing. "
                          "Run `flexbench eval --all` first.[/]")
        written = render_outputs(store, out, checkpoints=checkpoints, allow_dirty=allow_dirty)
        console.print(f"Wrote {len(written)} files from {n_runs} stored runs to {out}/ "
                      f"(open {out / 'index.html'} in a browser).")
