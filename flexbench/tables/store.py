"""Read access to stored results, as the tables need it.

The tables code against the documented :class:`flexbench.results.ResultStore` API
(``load_runs``, ``load_run``, ``load_records``). Until that module is available,
:class:`JsonResultReader` reads the documented on-disk format directly:
``<root>/<dataset>/<need>/<split>/<ranker>.json`` (aggregate) and ``.jsonl``
(one :class:`~flexbench.types.InstanceRecord` per line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from flexbench.types import InstanceRecord, RunKey, RunResult


class ResultSource(Protocol):
    """The read side of the result store used by the tables."""

    def load_runs(self) -> list[RunResult]: ...

    def load_run(self, key: RunKey) -> RunResult | None: ...

    def load_records(self, key: RunKey) -> list[InstanceRecord]: ...


def _run_from_json(data: dict[str, Any]) -> RunResult:
    k = data["key"]
    return RunResult(key=RunKey(k["ranker"], k["dataset"], k["need"], k.get("split", "test")),
                     n_instances=int(data["n_instances"]), metrics=dict(data["metrics"]),
                     rates=dict(data.get("rates", {})), provenance=dict(data.get("provenance", {})),
                     complete=bool(data.get("complete", True)))


def _record_from_json(data: dict[str, Any]) -> InstanceRecord:
    return InstanceRecord(
        instance_id=str(data["instance_id"]), raw_output=data.get("raw_output"), prompt=data.get("prompt"),
        parsed=bool(data.get("parsed", True)), output_ids=tuple(data.get("output_ids", ())),
        repaired_ids=tuple(data.get("repaired_ids", ())), n_invalid=int(data.get("n_invalid", 0)),
        n_duplicate=int(data.get("n_duplicate", 0)), n_padded=int(data.get("n_padded", 0)),
        metrics={k: float(v) for k, v in data.get("metrics", {}).items()})


class JsonResultReader:
    """Read-only access to a results directory in the documented JSON/JSONL layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _paths(self, key: RunKey) -> tuple[Path, Path]:
        base = self.root.joinpath(*key.path_parts())
        return base.with_suffix(".jsonl"), base.with_suffix(".json")

    def load_runs(self) -> list[RunResult]:
        """Every stored aggregate, sorted by key."""
        runs = [_run_from_json(json.loads(p.read_text(encoding="utf-8")))
                for p in sorted(self.root.glob("*/*/*/*.json"))]
        return sorted(runs, key=lambda r: r.key.path_parts())

    def load_run(self, key: RunKey) -> RunResult | None:
        """The aggregate of ``key``, or None when not stored."""
        path = self._paths(key)[1]
        return _run_from_json(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None

    def load_records(self, key: RunKey) -> list[InstanceRecord]:
        """The per-instance records of ``key`` (empty when the JSONL is absent)."""
        path = self._paths(key)[0]
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [_record_from_json(json.loads(line)) for line in lines if line.strip()]


def open_store(root: Path | None = None) -> ResultSource:
    """The result store at ``root`` (default ``<data>/results``).

    Uses :class:`flexbench.results.ResultStore` when installed, else :class:`JsonResultReader`.
    """
    try:
        from flexbench.results import ResultStore
    except ImportError:
        from flexbench.paths import results_dir
        return JsonResultReader(Path(root) if root is not None else results_dir())
    return ResultStore(root)
