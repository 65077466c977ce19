"""Render every paper table, the critic table, the figures and the HTML page from stored results.

Output files under ``out_dir``: ``table<N>.md`` for N in 1, 2, 3, 6, 7, 8, 9,
``critic.md``, ``figures.md``, ``figure<3|4>-<dataset>.png`` (training logs),
``figure2.md`` and ``figure2-<dataset>.png`` (joint vs single-need policies, from
stored runs: :mod:`flexbench.tables.joint`) and ``index.html``.
Every file is a function of the store, the training logs and the prepared
datasets' meta only (no clock), and each is written atomically (temporary file,
then rename). Writing into the checkout's own ``leaderboards/`` is guarded
(:mod:`flexbench.leaderboard.committed`): refused from uncommitted code unless
``allow_dirty``, which puts a warning banner on top of every file.
"""

from __future__ import annotations

from pathlib import Path

from flexbench.leaderboard.committed import (
    CommittedStore,
    check_committed_output,
    is_committed_target,
    repo_root,
)
from flexbench.leaderboard.model import build_boards
from flexbench.leaderboard.protocol import PreparedResolver
from flexbench.results import atomic_write_text
from flexbench.tables.cells import ResolvedTable, resolve_table
from flexbench.tables.critic import load_critic_reports
from flexbench.tables.figures import write_figures
from flexbench.tables.html import PAGE, critic_html, joint_html, render_page
from flexbench.tables.joint import write_joint_figures
from flexbench.tables.layout import CRITIC, TABLES
from flexbench.tables.markdown import render_critic, render_figure_index, render_joint, render_table
from flexbench.tables.paper import PaperNumbers, load_paper_numbers
from flexbench.tables.store import ResultSource


def write_text(path: Path, text: str, banner: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (the result store's fsynced temp file + rename), under ``banner``."""
    atomic_write_text(path, f"> **{banner}**\n\n{text}" if banner else text)
    return path


def resolve_all(store: ResultSource, paper: PaperNumbers | None = None) -> list[ResolvedTable]:
    """Every paper table of :data:`~flexbench.tables.layout.TABLES`, resolved from ``store``."""
    paper = paper or load_paper_numbers()
    return [resolve_table(layout, store, paper) for layout in TABLES]


def render_outputs(store: ResultSource, out_dir: Path, *, checkpoints: Path | None = None,
                   markdown: bool = True, html: bool = True, allow_dirty: bool = False,
                   prepared: PreparedResolver | None = None) -> list[Path]:
    """Write the Markdown tables (``markdown``), figures and HTML page (``html``); return the paths.

    ``checkpoints`` (default ``<data>/checkpoints``) holds the critic reports and
    training logs; ``prepared`` finds the prepared datasets of the protocol cards.
    When ``html`` is set, the page is the last path returned.
    """
    from flexbench.paths import checkpoints_dir

    out_dir = Path(out_dir)
    if is_committed_target(out_dir, repo_root()):  # committed tables: no LLM cells from a handful of instances
        store = CommittedStore(store)
    runs = store.load_runs()
    banner = check_committed_output(out_dir, runs, allow_dirty=allow_dirty)
    checkpoints = Path(checkpoints) if checkpoints is not None else checkpoints_dir()
    paper = load_paper_numbers()
    tables = resolve_all(store, paper)
    reports = load_critic_reports(checkpoints, CRITIC)
    figures = write_figures(checkpoints, out_dir)
    joint = write_joint_figures(store, out_dir)
    written = [out_dir / f.path for f in (*figures, *joint) if f.path is not None]
    if markdown:
        for table in tables:
            written.append(write_text(out_dir / f"table{table.layout.table_id}.md", render_table(table), banner))
        written.append(write_text(out_dir / "critic.md", render_critic(reports, CRITIC, paper), banner))
        written.append(write_text(out_dir / "figures.md", render_figure_index(figures), banner))
        written.append(write_text(out_dir / f"figure{joint[0].layout.figure_id}.md", render_joint(joint), banner))
    if html:
        boards = build_boards(store, runs=runs, prepared=prepared)
        page = render_page(boards, tables, critic_html(reports, CRITIC, paper), figures, banner=banner,
                           joint=joint_html(joint))
        written.append(write_text(out_dir / PAGE, page))
    return written


def write_html(store: ResultSource, out_dir: Path, *, checkpoints: Path | None = None,
               allow_dirty: bool = False, prepared: PreparedResolver | None = None) -> Path:
    """Write ``<out_dir>/index.html`` (and the figure PNGs it shows) from ``store``; return the page path."""
    return render_outputs(store, Path(out_dir), checkpoints=checkpoints, markdown=False, allow_dirty=allow_dirty,
                          prepared=prepared)[-1]
