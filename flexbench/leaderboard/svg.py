"""Inline SVG charts of a board: one bar per complete run on the chart metric, with reference lines.

Each bar is a run's mean (NDCG@5 by default) with its 95 % Student t-interval
as a whisker (:func:`flexbench.leaderboard.significance.t_interval`; none for a
run of one instance); the random floor (dashed) and the oracle (solid) are
vertical lines (:mod:`flexbench.leaderboard.protocol`). Bars are grouped and
coloured by kind in the board's row order. No script, no external resource:
the SVG is part of the page's text. Every bar carries ``data-ranker``,
``data-mean``, ``data-lo`` and ``data-hi``, every line ``data-line`` and
``data-value``, so a test can read the chart back.
"""

from __future__ import annotations

from html import escape

from flexbench.leaderboard.model import Board
from flexbench.leaderboard.protocol import CHART_METRIC, Reference

KIND_COLOURS: dict[str, str] = {"reference": "#9e9e9e", "oracle": "#6a4c93", "classic": "#1982c4",
                                "zero-shot": "#ff924c", "trained": "#2a9d8f", "external": "#c9184a",
                                "other": "#5c5c5c"}
WIDTH, LABEL_W, PLOT_W, ROW_H, TOP, BOTTOM = 720, 200, 420, 20, 34, 30


def _x(value: float) -> float:
    return round(LABEL_W + PLOT_W * min(1.0, max(0.0, value)), 2)


def _axis(height: float) -> list[str]:
    parts = []
    for i in range(6):
        v = i / 5
        x = _x(v)
        parts.append(f'<line x1="{x}" y1="{TOP - 4}" x2="{x}" y2="{height - BOTTOM}" class="grid"/>'
                     f'<text x="{x}" y="{height - BOTTOM + 14}" text-anchor="middle" class="tick">{v:.1f}</text>')
    return parts


def _reference(name: str, ref: Reference, height: float, dy: int) -> str:
    if ref.value is None:
        return ""
    x = _x(ref.value)
    dash = ' stroke-dasharray="5 3"' if name == "random" else ""
    return (f'<g data-line="{name}" data-value="{ref.value!r}"><title>{escape(name)}: {ref.value:.4f} '
            f'({escape(ref.source)})</title><line x1="{x}" y1="{TOP - 8}" x2="{x}" y2="{height - BOTTOM}" '
            f'class="ref ref-{name}"{dash}/><text x="{x}" y="{TOP - 12 - dy}" text-anchor="middle" '
            f'class="reflabel">{escape(name)} {ref.value:.3f}</text></g>')


def _bar(y: float, ranker: str, kind: str, mean: float, interval: tuple[float, float] | None, *, best: bool,
         worse: bool, n: str) -> str:
    colour = KIND_COLOURS.get(kind, KIND_COLOURS["other"])
    lo, hi = interval if interval is not None else (mean, mean)
    whisker = ""
    if interval is not None:
        cy = round(y + ROW_H / 2 - 2, 2)
        whisker = (f'<line x1="{_x(lo)}" y1="{cy}" x2="{_x(hi)}" y2="{cy}" class="ci"/>'
                   f'<line x1="{_x(lo)}" y1="{cy - 4}" x2="{_x(lo)}" y2="{cy + 4}" class="ci"/>'
                   f'<line x1="{_x(hi)}" y1="{cy - 4}" x2="{_x(hi)}" y2="{cy + 4}" class="ci"/>')
    ci = f"95% CI {lo:.3f}–{hi:.3f}" if interval is not None else "no interval (n < 2)"
    label = f"{ranker}{' †' if worse else ''}"
    weight = ' font-weight="bold"' if best else ""
    return (f'<g class="bar" data-ranker="{escape(ranker)}" data-kind="{escape(kind)}" data-mean="{mean!r}" '
            f'data-lo="{lo!r}" data-hi="{hi!r}"><title>{escape(ranker)} ({escape(kind)}): {mean:.4f}, {ci}, '
            f'n {escape(n)}</title>'
            f'<text x="{LABEL_W - 6}" y="{round(y + ROW_H / 2 + 2, 2)}" text-anchor="end" class="label"{weight}>'
            f'{escape(label)}</text>'
            f'<rect x="{LABEL_W}" y="{round(y + 3, 2)}" width="{round(_x(mean) - LABEL_W, 2)}" '
            f'height="{ROW_H - 8}" fill="{colour}"/>{whisker}'
            f'<text x="{WIDTH - 4}" y="{round(y + ROW_H / 2 + 2, 2)}" text-anchor="end" class="value"{weight}>'
            f'{mean:.3f}</text></g>')


def board_chart(board: Board, metric: str = CHART_METRIC) -> str:
    """The SVG chart of ``board`` on ``metric`` (module docstring); empty when no run is complete."""
    rows = [r for _, group in board.groups() for r in group if r.cells[metric].value is not None]
    if not rows:
        return ""
    height = TOP + ROW_H * len(rows) + BOTTOM
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(metric)} per method, '
             f'{escape(board.dataset)} {escape(board.need)} {escape(board.split)}">'), *_axis(height)]
    for i, row in enumerate(rows):
        cell = row.cells[metric]
        parts.append(_bar(TOP + i * ROW_H, row.ranker, row.kind, float(cell.value), cell.interval, best=cell.best,
                          worse=cell.worse, n=row.n))
    if board.card is not None:
        floor, oracle = board.card.random_floor, board.card.oracle
        close = floor.value is not None and oracle.value is not None and abs(floor.value - oracle.value) < 0.15
        parts += [_reference("random", floor, height, 0), _reference("oracle", oracle, height, 10 if close else 0)]
    parts.append(f'<text x="{LABEL_W + PLOT_W / 2}" y="{height - 4}" text-anchor="middle" class="axis">'
                 f'{escape(metric.upper())} (bar: mean; whisker: 95% t-interval)</text>')
    parts.append("</svg>")
    return "".join(parts)
