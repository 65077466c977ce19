"""A static HTML leaderboard: one self-contained page, no server, no CDN.

Sections: sortable leaderboards per (dataset, need, split) over every stored run
(an unfinished run shows "—", never its partial mean),
the paper tables (same cell text as the Markdown), the critic table, the figures
and the provenance of each table. Sorting is vanilla JS inlined from
``static/leaderboard.js``. Every value cell carries ``data-cell`` =
``table|dataset|need|ranker|metric`` and ``data-value`` (full precision) so the
rendered page can be checked against the Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources
from itertools import groupby
from pathlib import Path

from flexbench.tables.cells import Cell, CellStatus, ResolvedTable
from flexbench.tables.critic import CriticReport, critic_cells
from flexbench.tables.figures import FigureResult
from flexbench.tables.layout import DATASET_TITLES, GAIN_ROW, METRIC_TITLES, CriticLayout
from flexbench.tables.markdown import LEGEND, STATUS_TEXT, critic_provenance, fmt_value, model_text
from flexbench.tables.paper import PaperNumbers
from flexbench.tables.provenance import provenance_line
from flexbench.tables.store import ResultSource
from flexbench.types import RunResult

RATES = ("invalid_rate", "duplicate_rate", "parse_failure_rate", "pad_rate")
PAGE = "index.html"
NOTICE = ("Numbers on this page come from the runs stored in this FlexBench result store, computed with "
          "the models and data scale named beside them. The paper's reported numbers are shown in grey "
          "parentheses for comparison only.")


def _static(name: str) -> str:
    return resources.files("flexbench.tables").joinpath("static", name).read_text(encoding="utf-8")


def _td(text: str, *, cell: str = "", value: float | None = None, cls: str = "") -> str:
    attrs = f' data-cell="{escape(cell)}"' if cell else ""
    attrs += f' data-value="{value!r}"' if value is not None else ""
    attrs += f' class="{cls}"' if cls else ""
    return f"<td{attrs}>{text}</td>"


def _paper_cell(cell: Cell, cell_id: str, gain: bool = False) -> str:
    ours = fmt_value(cell.value, gain) + cell.mark if cell.status is CellStatus.OK else STATUS_TEXT[cell.status]
    text = f'{escape(ours)} <span class="paper">({escape(fmt_value(cell.paper, gain))})</span>'
    return _td(text, cell=cell_id, value=cell.value, cls="" if cell.status is CellStatus.OK else "missing")


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


def leaderboard_html(runs: Sequence[RunResult]) -> str:
    """Sortable tables, one per (dataset, need, split), over every stored run."""
    parts = []
    ordered = sorted(runs, key=lambda r: (r.key.dataset, r.key.need, r.key.split, r.key.ranker))
    for (dataset, need, split), group in groupby(ordered, key=lambda r: (r.key.dataset, r.key.need, r.key.split)):
        group = list(group)
        head = "".join(f"<th>{METRIC_TITLES[m]}</th>" for m in METRIC_TITLES)
        head += "".join(f"<th>{r.replace('_', ' ')}</th>" for r in RATES)
        rows = []
        for run in group:
            k = run.key
            shown = run.metrics if run.complete else {}  # a partial mean is never shown as a result
            cells = "".join(_td(fmt_value(shown.get(m)), cell=f"lb|{dataset}|{need}|{k.ranker}|{m}",
                                value=shown.get(m)) for m in METRIC_TITLES)
            cells += "".join(_td(fmt_value(run.rates.get(r)), value=run.rates.get(r)) for r in RATES)
            prov = run.provenance
            rows.append(f"<tr><td>{escape(k.ranker)}</td>{cells}"
                        + _td(str(run.n_instances), value=float(run.n_instances))
                        + f"<td>{escape(str(prov.get('model') or ''))}</td>"
                        + f"<td>{escape(str(prov.get('train_need') or ''))}</td>"
                        + f"<td>{'yes' if run.complete else 'no'}</td></tr>")
        tid = f"lb-{dataset}-{need}-{split}"
        parts.append(
            f'<h3>{escape(DATASET_TITLES.get(dataset, dataset))} · {escape(need)} · {escape(split)}</h3>'
            f'<div class="scroll"><table id="{escape(tid)}" class="sortable"><thead><tr><th>Ranker</th>{head}<th>n</th>'
            f"<th>model</th><th>train need</th><th>complete</th></tr></thead><tbody>{''.join(rows)}</tbody>"
            f'</table></div><p class="prov">{escape(provenance_line(group))}</p>')
    return "".join(parts) or "<p>No stored runs.</p>"


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


def render_page(runs: Sequence[RunResult], tables: Sequence[ResolvedTable], critic: str,
                figures: Sequence[FigureResult]) -> str:
    """The whole page as one string (deterministic for the same inputs)."""
    toc = "".join(f'<li><a href="#table-{t.layout.table_id}">{escape(t.layout.title)}</a></li>' for t in tables)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>FlexBench leaderboard</title><style>{_static('leaderboard.css')}</style></head><body>"
        f'<h1>FlexBench leaderboard</h1><p class="notice">{escape(NOTICE)}</p>'
        f"<h2>Leaderboards by dataset and need</h2><p>Click a column header to sort.</p>{leaderboard_html(runs)}"
        f"<h2>Paper tables</h2><p>{escape(LEGEND)}</p><ul>{toc}</ul>"
        + "".join(paper_table_html(t) for t in tables) + critic
        + f"<h2>Training curves</h2>{figures_html(figures)}"
        f"<script>{_static('leaderboard.js')}</script></body></html>\n")


def write_html(store: ResultSource, out_dir: Path, *, checkpoints: Path | None = None) -> Path:
    """Write ``<out_dir>/index.html`` (and the figure PNGs it shows) from ``store``; return the page path."""
    from flexbench.tables.build import render_outputs

    return render_outputs(store, Path(out_dir), checkpoints=checkpoints, markdown=False)[-1]
