"""``flexbench data fetch|sample|prepare`` (issue: datasets)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Download, synthesise and prepare datasets.", no_args_is_help=True)
