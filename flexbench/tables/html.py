"""A static HTML leaderboard: one self-contained page, no server, no CDN, opens from disk.

Sections: per dataset, the leaderboard model's need-switch table and, per need,
the protocol card, an inline SVG chart and the board grouped by kind with best
and significance marks (:mod:`flexbench.leaderboard.html`: the same model as the
terminal and Markdown boards; an unfinished run shows "—", never its partial
mean); then the paper tables (same cell text as the Markdown), the critic table,
Figure 2 (joint vs single-need policies), the training-curve figures and the
provenance of each table. Sorting is vanilla JS inlined from
``static/leaderboard.js``. Every value cell carries ``data-cell`` =
``table|dataset|need|ranker|metric`` and ``data-value`` (full precision) so the
rendered page can be checked against the Markdown. Writing the page (and the
figures it shows) is :func:`flexbench.tables.build.render_outputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources

from flexbench.leaderboard.html import leaderboards_html, td
from flexbench.leaderboard.model import Board
from flexbench.tables.cells import Cell, CellStatus, ResolvedTable
from flexbench.tables.critic import CriticReport, critic_cells
from flexbench.tables.figures import FigureResult
from flexbench.tables.joint import Bar, JointPanel, Series
from flexbench.tables.layout import DATASET_TITLES, GAIN_ROW, METRIC_TITLES, CriticLayout
from flexbench.tables.markdown import (
    JOINT_LEGEND,
    LEGEND,
    STATUS_TEXT,
    critic_provenance,
    fmt_value,
    missing_lines,
    model_text,
)
from flexbench.tables.paper import PaperNumbers
from flexbench.tables.provenance import provenance_line

PAGE = "index.html"
NOTICE = ("Numbers on this page come from the runs stored in this FlexBench result store, computed with "
          "the models and data scale named beside them. The paper's reported numbers are shown in grey "
          "parentheses for comparison only.")


def _static(name: str) -> str:
    return resources.files("flexbench.tables").joinpath("static", name).read_text(encoding="utf-8")


def _paper_cell(cell: Cell, cell_id: str, gain: bool = False) -> str:
    ours = fmt_value(cell.value, gain) + cell.mark if cell.status is CellStatus.OK else STATUS_TEXT[cell.status]
    text = f'{escape(ours)} <span class="paper">({escape(fmt_value(cell.paper, gain))})</span>'
    return td(text, cell=cell_id, value=cell.value, cls="" if cell.status is CellStatus.OK else "missing")


def paper_table_html(table: ResolvedTable) -> str:
    """One paper table as HTML, the same cells and text as its Markdown."""
    layout = table.layout
    titles = [DATASET_TITLES.get(g.dataset, g.title) for g in layout.groups]
    head = "".join(f"<th>{escape(g.title)} {METRIC_TITLES[m]}</th>" for g in layout.groups for m in g.metrics)
    width = 2 + sum(len(g.metrics) for g in layout.groups)
    body, rows = [], iter(table.rows)
    for section in layout.sections:
        body.append(f'<tr><td class="section" colspan="{width}">{escape(section.title)}</td></tr>')
        for _ in section.rows:
            rr = next(rows)
            cells = "".join(
                _paper_cell(c, f"{layout.table_id}|{g.dataset}|{g.need}|{rr.row.ranker}|{c.metric}")
                for g, group in zip(layout.groups, rr.cells, strict=True) for c in group)
            body.append(f"<tr><td>{escape(rr.row.label)}</td>{cells}"
                        f"<td>{escape(model_text(rr, titles))}</td></tr>")
    if table.gain is not None:
        cells = "".join(_paper_cell(c, f"{layout.table_id}|{g.dataset}|{g.need}|{GAIN_ROW}|{c.metric}", True)
                        for g, group in zip(layout.groups, table.gain, strict=True) for c in group)
        body.append(f"<tr><td>vs Qwen2.5-3B-Instruct (zero-shot)</td>{cells}<td></td></tr>")
    return (f'<h3 id="table-{layout.table_id}">{escape(layout.title)}</h3><p>{escape(layout.caption)}</p>'
            f'<div class="scroll"><table id="paper-{layout.table_id}" class="paper-table"><thead><tr><th>Method</th>{head}'
            f"<th>Model (ours, where not the paper's)</th></tr></thead><tbody>{''.join(body)}</tbody></table></div>"
            f'<p class="prov">{escape(provenance_line(table.runs))}</p>')


def critic_html(reports: Sequence[CriticReport], layout: CriticLayout, paper: PaperNumbers) -> str:
    """The critic quality table (same cells as its Markdown)."""
    head = "".join(f"<th>{escape(DATASET_TITLES.get(r.dataset, r.dataset))} {escape(t)}</th>"
                   for r in reports for t in layout.titles)
    cells = "".join(_paper_cell(cell, f"critic|{dataset}||critic|{cell.metric}")
                    for dataset, cell in critic_cells(tuple(reports), layout, paper))
    return (f'<h3 id="table-critic">Critic quality (paper Appendix G)</h3><table id="paper-critic">'
            f"<thead><tr><th>Method</th>{head}</tr></thead><tbody><tr><td>Critic</td>{cells}</tr></tbody>"
            f'</table><p class="prov">{escape(critic_provenance(reports))}</p>')


def figures_html(figures: Sequence[FigureResult]) -> str:
    """The figure images and, for each, the curves drawn and missing."""
    parts = []
    for fig in figures:
        title = f"{fig.layout.title} ({DATASET_TITLES.get(fig.dataset, fig.dataset)})"
        img = f'<img src="{escape(fig.path)}" alt="{escape(title)}">' if fig.path else ""
        parts.append(f"<h3>{escape(title)}</h3>{img}<p>Curves drawn: {escape(', '.join(fig.drawn) or 'none')}."
                     f"<br>Curves missing (no training log stored): "
                     f"{escape(', '.join(fig.missing) or 'none')}.</p>")
    return "".join(parts)


def joint_html(panels: Sequence[JointPanel]) -> str:
    """Figure 2: per dataset, the image, the bar values (``data-cell`` = ``figure2|dataset|need|label|metric``)
    and the commands for missing bars."""
    from flexbench.vocabulary import get_need

    if not panels:
        return ""
    layout = panels[0].layout
    head = "".join(f"<th>{METRIC_TITLES[m]} {escape(s.value)}</th>" for m in layout.metrics for s in Series)
    parts = [f'<h2 id="figure-{layout.figure_id}">{escape(layout.title)}</h2><p>{escape(JOINT_LEGEND)}</p>']
    for panel in panels:
        title = DATASET_TITLES.get(panel.dataset, panel.dataset)
        img = f'<img src="{escape(panel.path)}" alt="{escape(layout.title)} ({escape(title)})">' if panel.path else ""
        rows = []
        for need in panel.needs:
            cells = "".join(_bar_cell(panel.bar(s, need), m, layout.figure_id) for m in layout.metrics for s in Series)
            rows.append(f"<tr><td>{escape(get_need(need).title)}</td>{cells}</tr>")
        notes = "".join(f"<p>{escape(line)}</p>" for line in missing_lines(panel) if line)
        parts.append(f"<h3>{escape(title)}</h3>{img}<table><thead><tr><th>Test need</th>{head}</tr></thead>"
                     f"<tbody>{''.join(rows)}</tbody></table>{notes}"
                     f'<p class="prov">{escape(provenance_line(panel.runs))}</p>')
    return "".join(parts)


def _bar_cell(bar: Bar, metric: str, figure_id: str) -> str:
    ok = bar.status is CellStatus.OK
    text = fmt_value(bar.values[metric]) if ok else STATUS_TEXT[bar.status]
    return td(escape(text), cell=f"figure{figure_id}|{bar.key.dataset}|{bar.need}|{bar.key.ranker}|{metric}",
              value=bar.values.get(metric), cls="" if ok else "missing")


def render_page(boards: Sequence[Board], tables: Sequence[ResolvedTable], critic: str,
                figures: Sequence[FigureResult], *, banner: str | None = None, joint: str = "") -> str:
    """The whole page as one string (deterministic for the same inputs); ``banner`` a warning shown on top;
    ``joint`` Figure 2's section (:func:`joint_html`)."""
    toc = "".join(f'<li><a href="#table-{t.layout.table_id}">{escape(t.layout.title)}</a></li>' for t in tables)
    boards_toc = "".join(f'<li><a href="#lb-{escape(d)}">Leaderboard: {escape(DATASET_TITLES.get(d, d))}</a></li>'
                         for d in sorted({b.dataset for b in boards}))
    warning = f'<p class="banner">{escape(banner)}</p>' if banner else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>FlexBench leaderboard</title><style>{_static('leaderboard.css')}</style></head><body>"
        f'<h1>FlexBench leaderboard</h1>{warning}<p class="notice">{escape(NOTICE)}</p><ul>{boards_toc}</ul>'
        f"{leaderboards_html(boards, DATASET_TITLES)}"
        f"<h2>Paper tables</h2><p>{escape(LEGEND)}</p><ul>{toc}</ul>"
        + "".join(paper_table_html(t) for t in tables) + critic
        + joint + f"<h2>Training curves</h2>{figures_html(figures)}"
        f"<script>{_static('leaderboard.js')}</script></body></html>\n")
