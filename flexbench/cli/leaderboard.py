"""``flexbench leaderboard`` (thin handler): stored results as terminal tables, Markdown, HTML, JSON or CSV.

Examples::

    flexbench leaderboard                          # rich tables here, leaderboards/<dataset>.md
    flexbench leaderboard --dataset kuairec --markdown-dir site/ --html site/
    flexbench leaderboard --format json > boards.json
    flexbench leaderboard --format csv --dataset mock

Writing into the checkout's own ``leaderboards/`` from uncommitted code is refused
(:mod:`flexbench.leaderboard.committed`); ``--allow-dirty`` writes under a warning banner.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from flexbench.errors import FlexBenchError


class Format(StrEnum):
    """Output of ``flexbench leaderboard``: ``rich`` tables (and Markdown files), or one format on stdout."""

    RICH = "rich"
    MARKDOWN = "markdown"
    JSON = "json"
    CSV = "csv"


def _console() -> Any:
    from rich.console import Console

    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped or captured: wide enough for a leaderboard row
        console.width = max(console.width, 160)
    return console


def show_leaderboard(dataset: str | None, markdown_dir: Path | None, datasets: list[str] | None = None, *,
                     results: Path | None = None, allow_dirty: bool = False, refuse: bool = False) -> None:
    """Print the rich leaderboard of stored results and write the Markdown files to ``markdown_dir``.

    Writing the committed ``leaderboards/`` from uncommitted code raises (``refuse``) or,
    as after ``eval --all``, is skipped with a note; ``allow_dirty`` writes under a banner.
    """
    from flexbench.leaderboard.committed import (
        DirtyTree,
        check_committed_output,
        committed_runs,
        is_committed_target,
        repo_root,
    )
    from flexbench.leaderboard.model import build_boards
    from flexbench.leaderboard.text import legend, rich_tables, write_markdown
    from flexbench.results import ResultStore

    store = ResultStore(results)
    runs = [r for r in store.load_runs() if datasets is None or r.key.dataset in datasets]
    console = _console()
    if not runs:
        console.print(f"no stored results under {store.root}; run `flexbench eval` first")
        return
    boards = build_boards(store, dataset=dataset, runs=runs)
    for table in rich_tables(boards, switches=True):
        console.print(table)
    console.print(legend())
    if markdown_dir is None:
        return
    try:
        shown = [r for r in runs if dataset is None or r.key.dataset == dataset]
        banner = check_committed_output(markdown_dir, shown, allow_dirty=allow_dirty)
    except DirtyTree as err:
        if refuse:
            raise
        console.print(f"[yellow]not writing {markdown_dir}:[/] {err}", highlight=False)
        return
    note = None
    if is_committed_target(markdown_dir, repo_root()):  # committed boards: no LLM rows on a handful of instances
        kept, note = committed_runs(runs)
        boards = build_boards(store, dataset=dataset, runs=kept)
    for path in write_markdown(boards, markdown_dir, banner=banner, note=note):
        console.print(f"wrote {path}" + (" (with the --allow-dirty banner)" if banner else ""))


def print_format(fmt: Format, dataset: str | None, results: Path | None) -> None:
    """Write the leaderboard in ``fmt`` (markdown, json or csv) to stdout; nothing else is printed."""
    from flexbench.leaderboard.formats import leaderboard_csv, leaderboard_json
    from flexbench.leaderboard.model import build_boards
    from flexbench.leaderboard.text import markdown_for
    from flexbench.results import ResultStore

    boards = build_boards(ResultStore(results), dataset=dataset)
    if fmt is Format.JSON:
        text = leaderboard_json(boards)
    elif fmt is Format.CSV:
        text = leaderboard_csv(boards)
    else:
        text = "\n".join(markdown_for(boards, ds) for ds in sorted({b.dataset for b in boards}))
    typer.echo(text, nl=False)


def write_site(out_dir: Path, results: Path | None, *, allow_dirty: bool) -> Path:
    """Write the static HTML page (and its figures) to ``out_dir``."""
    from flexbench.results import ResultStore

    try:
        for name in ("flexbench.tables.html", "flexbench.tables.build"):
            module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise FlexBenchError(f"the HTML site generator is not installed ({err.name} missing); "
                             f"use the Markdown files instead") from None
    return module.write_html(ResultStore(results), out_dir, allow_dirty=allow_dirty)


def register(app: typer.Typer) -> None:
    """Add the leaderboard command to ``app``."""

    @app.command("leaderboard")
    def leaderboard(
        dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
        markdown_dir: Annotated[Path, typer.Option(help="Write <dataset>.md files here (rich format).")] = Path(
            "leaderboards"),
        html: Annotated[Path | None, typer.Option(help="Also write the static HTML site to this directory.")] = None,
        format_: Annotated[Format, typer.Option("--format", help="rich (tables here, Markdown files), or "
                                                "markdown/json/csv on stdout for scripts.")] = Format.RICH,
        results: Annotated[Path | None, typer.Option(help="Result store (default <data>/results).")] = None,
        allow_dirty: Annotated[bool, typer.Option(
            "--allow-dirty", help="Write the committed leaderboards/ from uncommitted code, under a banner.")] = False,
    ) -> None:
        """Render stored results: rich tables and Markdown under --markdown-dir, or --format for scripts."""
        if format_ is not Format.RICH:
            print_format(format_, dataset, results)
        else:
            show_leaderboard(dataset, markdown_dir, results=results, allow_dirty=allow_dirty, refuse=True)
        if html is not None:
            path = write_site(html, results, allow_dirty=allow_dirty)
            if format_ is Format.RICH:
                _console().print(f"wrote {path}")
