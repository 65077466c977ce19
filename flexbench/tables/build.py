"""Render every paper table, the critic table, the figures and the HTML page from stored results.

Output files under ``out_dir``: ``table<N>.md`` for N in 1, 2, 3, 6, 7, 8, 9,
``critic.md``, ``figures.md``, ``figure<3|4>-<dataset>.png`` and ``index.html``.
Every file is a function of the store and the training logs only (no clock), and
each is written atomically (temporary file, then rename).
"""

from __future__ import annotations

from pathlib import Path

from flexbench.results import atomic_write_text
from flexbench.tables.cells import ResolvedTable, resolve_table
from flexbench.tables.critic import load_critic_reports
from flexbench.tables.figures import write_figures
from flexbench.tables.html import PAGE, critic_html, render_page
from flexbench.tables.layout import CRITIC, TABLES
from flexbench.tables.markdown import render_critic, render_figure_index, render_table
from flexbench.tables.paper import PaperNumbers, load_paper_numbers
from flexbench.tables.store import ResultSource


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (the result store's fsynced temp file + rename)."""
    atomic_write_text(path, text)
    return path


def resolve_all(store: ResultSource, paper: PaperNumbers | None = None) -> list[ResolvedTable]:
    """Every paper table of :data:`~flexbench.tables.layout.TABLES`, resolved from ``store``."""
    paper = paper or load_paper_numbers()
    return [resolve_table(layout, store, paper) for layout in TABLES]


def render_outputs(store: ResultSource, out_dir: Path, *, checkpoints: Path | None = None,
                   markdown: bool = True, html: bool = True) -> list[Path]:
    """Write the Markdown tables (``markdown``), figures and HTML page (``html``); return the paths.

    ``checkpoints`` (default ``<data>/checkpoints``) holds the critic reports and
    training logs. When ``html`` is set, the page is the last path returned.
    """
    from flexbench.paths import checkpoints_dir

    out_dir = Path(out_dir)
    checkpoints = Path(checkpoints) if checkpoints is not None else checkpoints_dir()
    paper = load_paper_numbers()
    tables = resolve_all(store, paper)
    reports = load_critic_reports(checkpoints, CRITIC)
    figures = write_figures(checkpoints, out_dir)
    written = [out_dir / f.path for f in figures if f.path is not None]
    if markdown:
        for table in tables:
            written.append(write_text(out_dir / f"table{table.layout.table_id}.md", render_table(table)))
        written.append(write_text(out_dir / "critic.md", render_critic(reports, CRITIC, paper)))
        written.append(write_text(out_dir / "figures.md", render_figure_index(figures)))
    if html:
        page = render_page(store.load_runs(), tables, critic_html(reports, CRITIC, paper), figures)
        written.append(write_text(out_dir / PAGE, page))
    return written
