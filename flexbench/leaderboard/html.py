"""HTML rendering of the leaderboard model: the same boards, marks and cards as the Markdown, plus charts.

Per dataset: the need-switch table, then per need its protocol card, its chart
(:mod:`flexbench.leaderboard.svg`) and its board. Board rows are grouped by
kind (one ``<tbody data-kind>`` per kind, opened by a group row), the best
value is bold and a significantly worse one carries ``†``, exactly the text of
the Markdown cell without its ``**``. Tables are ``sortable`` (the page's
script sorts within each kind group). Value cells carry ``data-cell`` =
``lb|dataset|need|ranker|metric`` (``switch|dataset|need|ranker`` in need-switch
tables) and ``data-value`` at full precision, so the page can be checked against
the Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from flexbench.leaderboard.model import Board, NeedSwitch, Row, need_switches
from flexbench.leaderboard.protocol import ProtocolCard
from flexbench.leaderboard.svg import board_chart
from flexbench.leaderboard.text import (
    METRIC_TITLES,
    format_value,
    header,
    invalid_text,
    legend,
    order_texts,
    span_text,
    switch_caption,
    switch_header,
    switch_text,
)
from flexbench.metrics import METRIC_NAMES


def td(text: str, *, cell: str = "", value: float | None = None, cls: str = "") -> str:
    """A ``<td>`` with optional ``data-cell``, ``data-value`` (full precision) and class."""
    attrs = f' data-cell="{escape(cell)}"' if cell else ""
    attrs += f' data-value="{value!r}"' if value is not None else ""
    attrs += f' class="{cls}"' if cls else ""
    return f"<td{attrs}>{text}</td>"


def card_html(card: ProtocolCard) -> str:
    """The protocol card as a definition list (same fields and text as the Markdown card)."""
    items = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in card.fields())
    cls = "card dirty" if card.dirty else "card"
    return f'<dl class="{cls}" data-card="{escape(card.dataset)}|{escape(card.need)}|{escape(card.split)}">{items}</dl>'


def _row_html(board: Board, row: Row) -> str:
    cells = []
    for metric in METRIC_NAMES:
        cell = row.cells[metric]
        text = escape(format_value(cell))
        cls = " ".join(c for c, on in (("best", cell.best), ("worse", cell.worse), ("missing", cell.value is None))
                       if on)
        cells.append(td(f"<strong>{text}</strong>" if cell.best and cell.value is not None else text,
                         cell=f"lb|{board.dataset}|{board.need}|{row.ranker}|{metric}", value=cell.value, cls=cls))
    n_value = float(row.n_instances) if row.complete else None
    o = row.order
    values = (None, None, None) if o is None else (o.spread, o.first_slot_share, o.kendall_tau)
    order = "".join(td(escape(text), value=value) for text, value in zip(order_texts(row), values, strict=True))
    return (f"<tr><td>{escape(row.ranker)}</td><td>{escape(row.kind)}</td>{''.join(cells)}"
            f"{td(escape(row.n), value=n_value)}{td(invalid_text(row), value=row.invalid_rate)}{order}</tr>")


def board_table(board: Board) -> str:
    """The board as a sortable table, one ``<tbody>`` per kind."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header())
    width = len(header())
    bodies = "".join(
        f'<tbody data-kind="{escape(kind)}"><tr class="group"><td colspan="{width}">{escape(kind)}</td></tr>'
        + "".join(_row_html(board, r) for r in rows) + "</tbody>"
        for kind, rows in board.groups())
    tid = f"lb-{board.dataset}-{board.need}-{board.split}"
    return (f'<div class="scroll"><table id="{escape(tid)}" class="sortable board"><thead><tr>{head}</tr></thead>'
            f"{bodies}</table></div>")


def switch_table(switch: NeedSwitch) -> str:
    """A need-switch table (values with ranks, the rank range last)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in switch_header(switch))
    rows = []
    for row in switch.rows:
        cells = "".join(td(escape(switch_text(row.cells[n])), cell=f"switch|{switch.dataset}|{n}|{row.ranker}",
                            value=row.cells[n].value, cls="" if row.cells[n].value is not None else "missing")
                        for n in switch.needs)
        moves = row.rank_span is not None and row.rank_span[0] != row.rank_span[1]
        rows.append(f"<tr><td>{escape(row.ranker)}</td><td>{escape(row.kind)}</td>{cells}"
                    f"{td(escape(span_text(row.rank_span)), cls='moves' if moves else '')}</tr>")
    return (f'<h3>Need switch</h3><p>{escape(switch_caption(switch))}</p><div class="scroll">'
            f'<table id="switch-{escape(switch.dataset)}-{escape(switch.split)}" class="switch"><thead><tr>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def board_html(board: Board, need_title: str) -> str:
    """One need's section: heading, protocol card, chart and board."""
    chart = board_chart(board)
    figure = (f'<figure class="chart">{chart}<figcaption>{METRIC_TITLES["ndcg@5"]} per method with its 95 % '
              f"t-interval over the per-instance scores; dashed: random floor, solid: oracle.</figcaption></figure>"
              if chart else '<p class="prov">No complete run to chart.</p>')
    card = card_html(board.card) if board.card is not None else ""
    return (f'<section class="board" id="board-{escape(board.dataset)}-{escape(board.need)}-{escape(board.split)}">'
            f"<h3>{escape(need_title)} (<code>{escape(board.need)}</code>, {escape(board.split)} split)</h3>"
            f'<div class="board-top">{card}{figure}</div>{board_table(board)}</section>')


def leaderboards_html(boards: Sequence[Board], dataset_titles: Mapping[str, str] | None = None) -> str:
    """Every dataset's need-switch table and boards, with the legend; a line when nothing is stored."""
    from flexbench.vocabulary import NEEDS

    if not boards:
        return "<p>No stored runs.</p>"
    titles = dataset_titles or {}
    parts = [f'<p class="legend">{escape(legend())} Click a column header to sort (within each kind).</p>']
    switches = {(s.dataset, s.split): s for s in need_switches(boards)}
    for dataset in sorted({b.dataset for b in boards}):
        parts.append(f'<h2 id="lb-{escape(dataset)}">Leaderboard: {escape(titles.get(dataset, dataset))}</h2>')
        mine = [b for b in boards if b.dataset == dataset]
        parts += [switch_table(switches[dataset, split]) for split in sorted({b.split for b in mine})
                  if (dataset, split) in switches]
        parts += [board_html(b, NEEDS[b.need].title if b.need in NEEDS else b.need) for b in mine]
    return "".join(parts)
