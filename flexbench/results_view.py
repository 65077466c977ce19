"""Read-only views of a result store: the read side as a protocol, and a filter over it.

Tables and boards read through the documented :class:`flexbench.results.ResultStore`
API (``load_runs``, ``load_run``, ``load_records``, ``load_trials``). :class:`ResultSource` names that
read side; :class:`FilteredStore` is a view that shows only the runs a predicate
keeps, so the committed boards (no thin LLM runs,
:class:`~flexbench.leaderboard.committed.CommittedStore`) and the paper-scale tables
(:class:`~flexbench.tables.setting.PaperScaleStore`) can stand in for the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from flexbench.types import InstanceRecord, RunKey, RunResult


class ResultSource(Protocol):
    """The read side of the result store."""

    def load_runs(self) -> list[RunResult]: ...

    def load_run(self, key: RunKey) -> RunResult | None: ...

    def load_records(self, key: RunKey) -> list[InstanceRecord]: ...

    def load_trials(self, key: RunKey) -> list[InstanceRecord]: ...


class FilteredStore:
    """``store`` with only the runs for which ``keep(run)`` is true; a dropped run has no records either."""

    def __init__(self, store: ResultSource, keep: Callable[[RunResult], bool]) -> None:
        self.store, self.keep = store, keep

    def load_runs(self) -> list[RunResult]:
        """The kept runs, in the store's order."""
        return [r for r in self.store.load_runs() if self.keep(r)]

    def load_run(self, key: RunKey) -> RunResult | None:
        """The run stored under ``key`` if it is kept, else None."""
        run = self.store.load_run(key)
        return run if run is not None and self.keep(run) else None

    def load_records(self, key: RunKey) -> list[InstanceRecord]:
        """The records of a kept run; ``[]`` for a dropped or missing one."""
        return self.store.load_records(key) if self.load_run(key) is not None else []

    def load_trials(self, key: RunKey) -> list[InstanceRecord]:
        """Every (instance, display permutation) record of a kept run; ``[]`` for a dropped or missing one."""
        return self.store.load_trials(key) if self.load_run(key) is not None else []
