"""Leaderboards as pure renderers over stored results: one model, rendered to terminal, Markdown, HTML, JSON, CSV.

* :mod:`~flexbench.leaderboard.model`: boards (rows grouped by kind, best and
  significance marks, confidence intervals, n/N) and the need-switch matrix;
* :mod:`~flexbench.leaderboard.protocol`: the protocol card of every board;
* :mod:`~flexbench.leaderboard.significance`: paired tests and t-intervals;
* :mod:`~flexbench.leaderboard.text` (rich, Markdown), :mod:`~flexbench.leaderboard.html`
  and :mod:`~flexbench.leaderboard.svg` (the static page's sections and charts),
  :mod:`~flexbench.leaderboard.formats` (JSON, CSV for scripts);
* :mod:`~flexbench.leaderboard.committed`: committed boards come from committed code.

This package imports nothing from :mod:`flexbench.tables`; the paper tables and
the static page (:mod:`flexbench.tables.html`) import it.
"""

from flexbench.leaderboard.model import (
    KIND_ORDER,
    Board,
    Cell,
    NeedSwitch,
    Row,
    build_board,
    build_boards,
    kind_of,
    need_switch,
    need_switches,
)
from flexbench.leaderboard.protocol import ProtocolCard, build_card
from flexbench.leaderboard.significance import paired_pvalues, t_interval
from flexbench.leaderboard.text import (
    METRIC_TITLES,
    MISSING,
    WORSE_MARK,
    format_cell,
    legend,
    markdown_for,
    rich_tables,
    write_markdown,
)

__all__ = ["KIND_ORDER", "METRIC_TITLES", "MISSING", "WORSE_MARK", "Board", "Cell", "NeedSwitch", "ProtocolCard",
           "Row", "build_board", "build_boards", "build_card", "format_cell", "kind_of", "legend", "markdown_for",
           "need_switch", "need_switches", "paired_pvalues", "rich_tables", "t_interval", "write_markdown"]
