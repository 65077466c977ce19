"""``flexbench tables`` (issue: paper tables)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the tables command to ``app``."""
