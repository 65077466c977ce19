"""Read access to stored results, as the tables need it.

The tables read through the documented :class:`flexbench.results.ResultStore` API
(``load_runs``, ``load_run``, ``load_records``); :class:`ResultSource` names that
read side so views such as :class:`~flexbench.tables.setting.PaperScaleStore`
can stand in for the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from flexbench.types import InstanceRecord, RunKey, RunResult


class ResultSource(Protocol):
    """The read side of the result store used by the tables."""

    def load_runs(self) -> list[RunResult]: ...

    def load_run(self, key: RunKey) -> RunResult | None: ...

    def load_records(self, key: RunKey) -> list[InstanceRecord]: ...


def open_store(root: Path | None = None) -> ResultSource:
    """The result store at ``root`` (default ``<data>/results``)."""
    from flexbench.results import ResultStore

    return ResultStore(root)
