"""``flexbench rankers``, ``flexbench eval`` and ``flexbench leaderboard`` (issue: spine)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the rankers, eval and leaderboard commands to ``app``."""
