"""FilteredStore: a read-only view that drops the runs (and their records) a predicate rejects."""

from __future__ import annotations

from flexbench.results_view import FilteredStore
from flexbench.types import InstanceRecord, RunKey, RunResult

KEPT, DROPPED = RunKey("keep", "d", "n"), RunKey("drop", "d", "n")


def _run(key: RunKey) -> RunResult:
    return RunResult(key=key, n_instances=1, metrics={}, rates={}, provenance={}, complete=True)


class _Store:
    def load_runs(self) -> list[RunResult]:
        return [_run(KEPT), _run(DROPPED)]

    def load_run(self, key: RunKey) -> RunResult | None:
        return _run(key)

    def load_records(self, key: RunKey) -> list[InstanceRecord]:
        return [InstanceRecord(key.ranker, None, None, True, (), (), 0, 0, 0, {})]


def test_filtered_store_drops_runs_and_their_records() -> None:
    view = FilteredStore(_Store(), lambda run: run.key.ranker == "keep")
    assert [r.key for r in view.load_runs()] == [KEPT]
    assert view.load_run(KEPT) is not None and view.load_run(DROPPED) is None
    assert [r.instance_id for r in view.load_records(KEPT)] == ["keep"] and view.load_records(DROPPED) == []
