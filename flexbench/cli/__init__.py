"""The ``flexbench`` command: a typer app assembled from one module per command group.

Handlers are thin: they parse flags and call the public API. User errors
(:class:`~flexbench.errors.FlexBenchError`) print as one red line and exit 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from flexbench.cli import data as data_cmds
from flexbench.cli import eval as eval_cmds
from flexbench.cli import export as export_cmds
from flexbench.cli import leaderboard as leaderboard_cmds
from flexbench.cli import prompt as prompt_cmds
from flexbench.cli import tables as tables_cmds
from flexbench.cli import train as train_cmds
from flexbench.errors import FlexBenchError

app = typer.Typer(name="flexbench", help="Benchmark and leaderboard for need-specific LLM ranking.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
eval_cmds.register(app)
export_cmds.register(app)
leaderboard_cmds.register(app)
prompt_cmds.register(app)
tables_cmds.register(app)
train_cmds.register(app)
app.add_typer(data_cmds.app, name="data")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except FlexBenchError as err:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(2)
