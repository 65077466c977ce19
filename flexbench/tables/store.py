"""Read access to stored results, as the tables need it.

The tables read through the documented :class:`flexbench.results.ResultStore` API
(``load_runs``, ``load_run``, ``load_records``); :class:`ResultSource`
(:mod:`flexbench.results_view`) names that read side so views such as
:class:`~flexbench.tables.setting.PaperScaleStore` can stand in for the store.
"""

from __future__ import annotations

from pathlib import Path

from flexbench.results_view import ResultSource

__all__ = ["ResultSource", "open_store"]


def open_store(root: Path | None = None) -> ResultSource:
    """The result store at ``root`` (default ``<data>/results``)."""
    from flexbench.results import ResultStore

    return ResultStore(root)
