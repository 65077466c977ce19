"""``flexbench train critic --dataset D``: train the critic on a prepared dataset's observed interactions.

A thin handler over :func:`flexbench.train.signal.critic_fit.fit_critic` (split,
training, resume, report) that prints the quality table. Options (``--set
key=value``) are the fields of :class:`~flexbench.train.signal.critic.CriticConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flexbench.trainers import TrainRequest


def train_critic_command(request: TrainRequest) -> Path:
    """Train, save and report the critic for ``request.dataset``; return the checkpoint directory."""
    from rich.console import Console

    from flexbench.catalog import open_dataset
    from flexbench.train.signal.critic import CriticConfig
    from flexbench.train.signal.critic_fit import fit_critic

    console = Console()
    config = CriticConfig.from_options(request.options, seed=request.seed)
    fit = fit_critic(open_dataset(request.dataset), config, Path(request.out_dir), resume=request.resume,
                     console=console)
    if fit.reused:
        console.print(f"critic already trained in {fit.out} (same data and config); reusing it")
    _print_table(console, fit.report)
    return fit.out


def _print_table(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"critic (best epoch {report.get('best_epoch')})")
    for column in ("split", "MSE", "MAE", "Pearson(mean)", "Pearson(var)", "n"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split in ("valid", "test"):
        m = report.get(split)
        if m:
            table.add_row(
                split, *(_fmt(m[k]) for k in ("mse", "mae", "pearson_mean", "pearson_var")), str(m["n"])
            )
    console.print(table)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
