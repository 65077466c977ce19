"""Result store: round trips, truncated last lines, deduplication, refusal of incompatible reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexbench.errors import FlexBenchError
from flexbench.results import (
    RESULTS_SCHEMA_VERSION,
    ResultStore,
    code_version,
    hardware,
    read_jsonl,
    record_from_json,
    record_to_json,
)
from flexbench.types import InstanceRecord, RunKey, RunResult

KEY = RunKey("random", "mock", "interest", "test")


def record(iid: str, value: float = 0.5) -> InstanceRecord:
    return InstanceRecord(iid, "1. i0001\n2. ☃", "prompt", True, ("i0001", "x"), ("i0001", "i0002"),
                          1, 0, 1, {"ndcg@5": value, "mrr@5": 1.0})


def result(n: int = 2, complete: bool = True, **prov: object) -> RunResult:
    """An aggregate; the complete one of n = 2 agrees with :func:`store_records` (checked on load)."""
    return RunResult(KEY, n, {"ndcg@5": 0.25}, {"invalid_rate": 0.5},
                     {"config": {"seed": 0}, "data_fingerprint": "abc", **prov}, complete=complete)


def store_records(store: ResultStore, *records: InstanceRecord) -> None:
    """Write ``records`` (default: the two that give :func:`result`'s aggregate) as the run's JSONL."""
    jsonl = store.run_paths(KEY)[0]
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    rows = records or (record("x1", 0.25), record("x2", 0.25))
    jsonl.write_text("".join(json.dumps(record_to_json(r)) + "\n" for r in rows), encoding="utf-8")


def test_paths_follow_the_layout(tmp_path: Path) -> None:
    jsonl, agg = ResultStore(tmp_path).run_paths(KEY)
    assert jsonl == tmp_path / "mock/interest/test/random.jsonl" and agg.suffix == ".json"
    with pytest.raises(FlexBenchError):
        ResultStore(tmp_path).run_paths(RunKey("a/b", "mock", "interest"))


def test_default_root_is_under_flexbench_data(data_root: Path) -> None:
    assert ResultStore().root == data_root / "results"


def test_record_round_trip() -> None:
    rec = record("x1")
    assert record_from_json(json.loads(json.dumps(record_to_json(rec)))) == rec


def test_aggregate_round_trip_and_schema(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store_records(store)
    path = store.write_aggregate(result())
    data = json.loads(path.read_text())
    assert data["schema_version"] == RESULTS_SCHEMA_VERSION
    assert set(data) == {"schema_version", "key", "n_instances", "metrics", "rates", "provenance", "complete"}
    assert store.load_run(KEY) == result() and store.load_runs() == [result()]
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was moved into place
    data["schema_version"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(FlexBenchError, match="schema_version"):
        store.load_run(KEY)


def test_append_resume_truncated_line_and_dedupe(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write_aggregate(result(n=0, complete=False))
    writer = store.open_run(KEY, config={"seed": 0}, data_fingerprint="abc")
    writer.append([record("x1"), record("x2")])
    writer.append([record("x2", 0.9)])  # already stored: ignored
    jsonl = store.run_paths(KEY)[0]
    with jsonl.open("a") as fh:  # a second copy (as if two writers raced) and a kill -9 mid-line
        fh.write(json.dumps(record_to_json(record("x1", 0.1))) + "\n" + '{"instance_id": "x3", "raw')
    assert [r.instance_id for r in store.load_records(KEY)] == ["x1", "x2"]
    assert store.load_records(KEY)[0].metrics["ndcg@5"] == 0.5  # first occurrence wins
    resumed = store.open_run(KEY, config={"seed": 0}, data_fingerprint="abc")
    assert set(resumed.done) == {("x1", 0), ("x2", 0)}
    assert jsonl.read_bytes().endswith(b"\n")  # the partial line was cut away
    resumed.append([record("x3")])
    assert [r.instance_id for r in store.load_records(KEY)] == ["x1", "x2", "x3"]


def test_corrupt_complete_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(FlexBenchError, match="corrupt"):
        read_jsonl(path)


def test_incompatible_rerun_is_refused_unless_overwrite(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write_aggregate(result(n=0, complete=False))
    store.open_run(KEY, config={"seed": 0}, data_fingerprint="abc").append([record("x1")])
    with pytest.raises(FlexBenchError, match="other data.*--overwrite"):
        store.open_run(KEY, config={"seed": 0}, data_fingerprint="zzz")
    with pytest.raises(FlexBenchError, match="differs in seed.*--overwrite"):
        store.open_run(KEY, config={"seed": 1}, data_fingerprint="abc")
    fresh = store.open_run(KEY, config={"seed": 1}, data_fingerprint="abc", overwrite=True)
    assert fresh.done == {} and store.load_run(KEY) is None


def test_records_without_aggregate_are_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    jsonl = store.run_paths(KEY)[0]
    jsonl.parent.mkdir(parents=True)
    jsonl.write_text(json.dumps(record_to_json(record("x1"))) + "\n")
    with pytest.raises(FlexBenchError, match="--overwrite"):
        store.open_run(KEY, config={}, data_fingerprint="abc")


def test_provenance_helpers() -> None:
    version = code_version()
    assert version["package"] and set(version) == {"package", "git_commit", "dirty"}
    hw = hardware()
    assert hw["cpu"] and hw["cpu_count"] >= 1 and "gpu" in hw


def test_a_run_under_another_prompt_version_is_not_resumed(data_root: Path) -> None:
    from flexbench.errors import FlexBenchError

    store = ResultStore()
    key = RunKey("zs", "mock", "interest", "test")
    with store.writer(key, config={"c": 1}, data_fingerprint="f", versions={"prompt_version": 2}) as w:
        w.append([])
    store.write_aggregate(RunResult(key, 0, {}, {}, {"data_fingerprint": "f", "config": {"c": 1},
                                                     "prompt_version": 2}, complete=False))
    with store.writer(key, config={"c": 1}, data_fingerprint="f", versions={"prompt_version": 2}):
        pass
    with pytest.raises(FlexBenchError, match=r"another protocol or prompt \(prompt_version 2 -> 3\)"), \
            store.writer(key, config={"c": 1}, data_fingerprint="f", versions={"prompt_version": 3}):
        pass


def test_a_lone_surrogate_in_a_record_is_stored_and_read_back() -> None:
    from flexbench.results import _json_line

    odd, plain = {"raw": "ok \ud800 end"}, {"raw": "é"}
    assert _json_line(plain) == '{"raw": "é"}\n'  # readable UTF-8 where it can be
    for value in (odd, plain):
        line = _json_line(value)
        line.encode("utf-8")  # always encodable
        assert json.loads(line) == value
