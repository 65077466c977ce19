"""``flexbench train METHOD --dataset D [--need N | --needs all]``: dispatch through the trainer table."""

from __future__ import annotations

import typer

app = typer.Typer(help="Train a method (see flexbench.trainers.TRAINERS).", no_args_is_help=True)
