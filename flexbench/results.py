"""Versioned result store: per-instance JSONL records and per-run JSON aggregates.

Layout under the root (default ``<data>/results``)::

    <dataset>/<need>/<split>/<ranker>.jsonl   one InstanceRecord per (instance, display permutation), appended per batch
    <dataset>/<need>/<split>/<ranker>.json    the RunResult aggregate (schema below)

Aggregate JSON::

    {"schema_version", "key": {ranker, dataset, need, split}, "n_instances",
     "metrics": {ndcg@5, ndcg@10, ndcg@30, recall@5, precision@5, mrr@5},
     "rates": {invalid_rate, duplicate_rate, parse_failure_rate, pad_rate},
     "provenance": {code_version, data_fingerprint, seed, model, hardware, config,
                    train_need, started_at, finished_at, strict, limit, n_available},
     "complete": bool}

Durability: records are appended, flushed and fsynced once per batch; an
aggregate is written to a temporary file and moved into place with
:func:`os.replace`, so a reader sees the old or the new file, never half of one.
After ``kill -9`` the JSONL may end in a truncated line: :meth:`ResultStore.open_run`
cuts it away, and a rerun scores only the instances not yet stored (records are
deduplicated by (instance ID, display permutation)). A rerun whose config or data fingerprint differs
from the stored run is refused unless the caller asks to overwrite.

Concurrency: :meth:`ResultStore.writer` holds the run's lock
(``<ranker>.lock`` beside the two files, :mod:`flexbench.locks`) from the
compatibility check to the final aggregate. A second writer of the same run is
refused with ``run ... in progress (pid N)``; so is ``--overwrite`` (it never
discards a running run's records: stop that run or wait for it). A lock left by
a killed run is taken over with a note, and the run resumes.

Verification on load: a stored aggregate is read only if it is a well-formed
result for its own path, and a complete one only if its ``n_instances``,
metrics and rates equal those recomputed from the first ``n_instances``
records of its JSONL (the JSONL is always in instance order: every run appends
the missing part of a prefix of the same instance list, in order). Editing a
number in the ``.json``, or deleting or truncating the ``.jsonl``, is an error
naming the file, never a number on a board. :meth:`ResultStore.load_runs`
reports such a file by name and skips it, so one bad file cannot break a board.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from flexbench.errors import FlexBenchError
from flexbench.locks import FileLock, LockHeld
from flexbench.order_stats import merge_trials
from flexbench.paths import results_dir
from flexbench.provenance import code_version, hardware
from flexbench.types import InstanceRecord, RunKey, RunResult

RESULTS_SCHEMA_VERSION = 1
__all__ = ["RESULTS_SCHEMA_VERSION", "ResultStore", "RunWriter", "atomic_write_text", "code_version", "dedupe", "hardware",
           "read_aggregate", "read_jsonl", "record_from_json", "record_to_json", "result_from_json", "result_to_json",
           "trial_key", "verify_run"]


def record_to_json(record: InstanceRecord) -> dict[str, Any]:
    """JSON-ready dict of a record."""
    out = asdict(record)
    out["output_ids"], out["repaired_ids"] = list(record.output_ids), list(record.repaired_ids)
    out["display_ids"] = list(record.display_ids)
    out["metrics"] = dict(record.metrics)
    return out


def record_from_json(data: Mapping[str, Any]) -> InstanceRecord:
    """Inverse of :func:`record_to_json`."""
    return InstanceRecord(
        instance_id=data["instance_id"], raw_output=data["raw_output"], prompt=data["prompt"],
        parsed=bool(data["parsed"]), output_ids=tuple(data["output_ids"]),
        repaired_ids=tuple(data["repaired_ids"]), n_invalid=int(data["n_invalid"]),
        n_duplicate=int(data["n_duplicate"]), n_padded=int(data["n_padded"]),
        metrics={k: float(v) for k, v in data["metrics"].items()},
        permutation=int(data.get("permutation", 0)), display_ids=tuple(data.get("display_ids", ())),
    )


def result_to_json(result: RunResult) -> dict[str, Any]:
    """The aggregate JSON object of a run (module docstring)."""
    return {"schema_version": RESULTS_SCHEMA_VERSION, "key": asdict(result.key),
            "n_instances": result.n_instances, "metrics": dict(result.metrics),
            "rates": dict(result.rates), "provenance": dict(result.provenance),
            "complete": result.complete}


def result_from_json(data: Any, source: Path | str = "stored result") -> RunResult:
    """Inverse of :func:`result_to_json`; refuses an unknown schema version and any other shape.

    ``source`` names the file in the one-line :class:`FlexBenchError`.
    """
    def bad(what: str) -> FlexBenchError:
        return FlexBenchError(f"{source}: not a FlexBench result ({what}); delete it, or rerun the "
                              f"evaluation with --overwrite")

    if not isinstance(data, Mapping):
        raise bad(f"a JSON {type(data).__name__}, expected an object")
    version = data.get("schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        raise FlexBenchError(f"{source}: schema_version {version!r}, this FlexBench reads "
                             f"{RESULTS_SCHEMA_VERSION}; rerun the evaluation with --overwrite")
    missing = [f for f in ("key", "n_instances", "metrics", "rates", "provenance", "complete") if f not in data]
    if missing:
        raise bad(f"no {', '.join(missing)}")
    key = data["key"]
    if not isinstance(key, Mapping) or set(key) != {"ranker", "dataset", "need", "split"} or \
            not all(isinstance(v, str) for v in key.values()):
        raise bad("'key' must be an object of strings ranker, dataset, need, split")
    n = data["n_instances"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise bad(f"'n_instances' is {n!r}, expected an integer >= 0")
    for field in ("metrics", "rates"):
        values = data[field]
        if not isinstance(values, Mapping) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values.values()):
            raise bad(f"'{field}' must map names to finite numbers")
    if not isinstance(data["provenance"], Mapping) or not isinstance(data["complete"], bool):
        raise bad("'provenance' must be an object and 'complete' a boolean")
    return RunResult(key=RunKey(**key), n_instances=n, metrics={k: float(v) for k, v in data["metrics"].items()},
                     rates={k: float(v) for k, v in data["rates"].items()},
                     provenance=dict(data["provenance"]), complete=data["complete"])


def read_aggregate(path: Path) -> RunResult:
    """The aggregate stored in ``path``, checked for shape (one-line error naming the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FlexBenchError(f"{path}: not UTF-8 text, not a FlexBench result; delete it, or rerun the "
                             f"evaluation with --overwrite") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        what = "the file is empty" if not text.strip() else f"invalid JSON at line {err.lineno}: {err.msg}"
        raise FlexBenchError(f"{path}: not a FlexBench result ({what}); delete it, or rerun the evaluation "
                             f"with --overwrite") from None
    return result_from_json(data, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a fsynced temporary file and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Complete JSON lines of ``path``; a truncated last line is ignored (and cut off if ``repair``).

    Every record is written with its newline in one append, so a final segment
    without a newline is an interrupted write. A malformed *complete* line is
    corruption, not an interruption, and raises :class:`FlexBenchError`.
    """
    if not path.exists():
        return []
    raw = path.read_bytes()
    end = raw.rfind(b"\n") + 1  # bytes up to and including the last newline
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(raw[:end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise FlexBenchError(f"{path} is corrupt at line {number}; "
                                 f"rerun with --overwrite to start this run again") from None
    if repair and end != len(raw):
        with path.open("r+b") as fh:
            fh.truncate(end)
            os.fsync(fh.fileno())
    return rows


def trial_key(record: InstanceRecord) -> tuple[str, int]:
    """What a record is unique by: ``(instance ID, display permutation)``."""
    return record.instance_id, record.permutation


def dedupe(records: Iterable[InstanceRecord]) -> list[InstanceRecord]:
    """Records with each (instance ID, permutation) once (first occurrence kept), in stored order."""
    out: dict[tuple[str, int], InstanceRecord] = {}
    for record in records:
        out.setdefault(trial_key(record), record)
    return list(out.values())


class RunWriter:
    """Appends one run's records; ``done`` maps the (instance ID, permutation) pairs already stored to their records."""

    def __init__(self, path: Path, done: Mapping[tuple[str, int], InstanceRecord]) -> None:
        self.path = path
        self.done: dict[tuple[str, int], InstanceRecord] = dict(done)

    def append(self, records: Iterable[InstanceRecord]) -> None:
        """Append ``records`` not stored yet, then flush and fsync (one call per batch)."""
        fresh = [r for r in records if trial_key(r) not in self.done]
        if not fresh:
            return
        payload = "".join(_json_line(record_to_json(r)) for r in fresh)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        self.done.update((trial_key(r), r) for r in fresh)


def _json_line(value: Any) -> str:
    """One JSON line, readable UTF-8 where possible; text holding a lone surrogate (which UTF-8 cannot
    encode) is written with ASCII escapes instead, which JSON reads back exactly."""
    line = json.dumps(value, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(value, ensure_ascii=True)
    return line + "\n"


class ResultStore:
    """Reads and writes runs under ``root`` (module docstring)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else results_dir()

    def run_paths(self, key: RunKey) -> tuple[Path, Path]:
        """``(<...>.jsonl, <...>.json)`` of ``key``."""
        for part in key.path_parts():
            if not part or "/" in part or os.sep in part or part in {".", ".."}:
                raise FlexBenchError(f"invalid run key part {part!r}: names may not contain '/'")
        base = self.root.joinpath(*key.path_parts())
        return base.with_name(base.name + ".jsonl"), base.with_name(base.name + ".json")

    def load_runs(self, *, on_skip: Callable[[str], None] | None = None) -> list[RunResult]:
        """Every stored aggregate that passes :meth:`load_run`'s checks, sorted by key.

        A file that fails them is reported through ``on_skip`` (default: one
        line on stderr naming it) and left out, so one bad file cannot break a board.
        """
        runs = []
        for path in sorted(self.root.glob("*/*/*/*.json")):
            try:
                runs.append(self._load_path(path))
            except FlexBenchError as err:
                (on_skip or _warn)(f"skipped {err}")
        return sorted(runs, key=lambda r: r.key.path_parts())

    def load_run(self, key: RunKey, *, verify: bool = True) -> RunResult | None:
        """The stored aggregate of ``key``, or ``None``; checked against its records (module docstring)."""
        path = self.run_paths(key)[1]
        if not path.exists():
            return None
        run = read_aggregate(path)
        if run.key != key:
            raise FlexBenchError(f"{path}: holds the result of {run.key.ranker} on {'/'.join(run.key.path_parts()[:3])}, "
                                 f"not of this path; delete it, or rerun with --overwrite")
        if verify:
            verify_run(run, self.load_trials(key), self.run_paths(key)[0])
        return run

    def _load_path(self, path: Path) -> RunResult:
        dataset, need, split = path.parts[-4:-1]
        run = self.load_run(RunKey(path.stem, dataset, need, split))
        assert run is not None  # the glob found the file
        return run

    def load_records(self, key: RunKey) -> list[InstanceRecord]:
        """One record per instance of ``key``, in stored order: its trials' metrics averaged over the display
        permutations (:func:`flexbench.order_stats.merge_trials`; a run with one permutation: its records)."""
        return merge_trials(self.load_trials(key))

    def load_trials(self, key: RunKey) -> list[InstanceRecord]:
        """Every stored record of ``key``, one per (instance, display permutation), in stored order."""
        path = self.run_paths(key)[0]
        out = []
        for number, row in enumerate(read_jsonl(path), start=1):
            try:
                out.append(record_from_json(row))
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise FlexBenchError(f"{path}: record {number} is not an instance record ({type(err).__name__}: "
                                     f"{err}); rerun with --overwrite") from None
        return dedupe(out)

    def write_aggregate(self, result: RunResult) -> Path:
        """Write ``result``'s aggregate JSON atomically; returns its path."""
        path = self.run_paths(result.key)[1]
        atomic_write_text(path, json.dumps(result_to_json(result), indent=2, sort_keys=True) + "\n")
        return path

    def delete_run(self, key: RunKey) -> None:
        """Remove both files of ``key`` (``--overwrite``)."""
        for path in self.run_paths(key):
            path.unlink(missing_ok=True)

    def lock(self, key: RunKey) -> FileLock:
        """The inter-process lock of run ``key`` (``<ranker>.lock`` beside its files)."""
        base = self.run_paths(key)[0]
        return FileLock(base.with_name(base.name.removesuffix(".jsonl") + ".lock"),
                        f"run {key.ranker} on {key.dataset}/{key.need}/{key.split}")

    @contextlib.contextmanager
    def writer(self, key: RunKey, *, config: Mapping[str, Any], data_fingerprint: str, overwrite: bool = False,
               on_stale: Callable[[str], None] | None = None,
               versions: Mapping[str, Any] | None = None) -> Iterator[RunWriter]:
        """Hold the run's lock while (re)running ``key``: :meth:`open_run` under the lock.

        A second writer (also with ``overwrite``) gets :class:`~flexbench.locks.LockHeld`
        naming the running one's pid; a lock left by a dead process is taken over
        (``on_stale`` says so). The lock is released when the block ends.
        """
        lock = self.lock(key)
        try:
            lock.acquire(on_stale=on_stale)
        except LockHeld as err:
            if overwrite:
                raise LockHeld(f"{err}; --overwrite does not discard a run in progress") from None
            raise
        try:
            yield self.open_run(key, config=config, data_fingerprint=data_fingerprint, overwrite=overwrite,
                                versions=versions)
        finally:
            lock.release()

    def open_run(self, key: RunKey, *, config: Mapping[str, Any], data_fingerprint: str,
                 overwrite: bool = False, versions: Mapping[str, Any] | None = None) -> RunWriter:
        """Prepare ``key`` for (re)running: check compatibility, repair the JSONL, return a writer.

        The stored run must have the same ``config``, ``data_fingerprint`` and
        ``versions`` (the :data:`VERSION_KEYS` of its provenance: protocol and prompt);
        otherwise this raises :class:`FlexBenchError` suggesting ``--overwrite``,
        unless ``overwrite`` is set, in which case the stored run is deleted.
        The caller holds the run's lock (use :meth:`writer`).
        """
        jsonl, _ = self.run_paths(key)
        if overwrite:
            self.delete_run(key)
        stored = self.load_run(key, verify=False)
        if stored is None and jsonl.exists() and jsonl.stat().st_size:
            raise FlexBenchError(f"{jsonl} has records but no aggregate to check them against; "
                                 f"rerun with --overwrite")
        if stored is not None:
            _check_compatible(key, stored, config, data_fingerprint, versions or {})
        read_jsonl(jsonl, repair=True)
        trials = self.load_trials(key)
        if stored is not None:
            verify_run(stored, trials, jsonl)
        return RunWriter(jsonl, {trial_key(r): r for r in trials})


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verify_run(run: RunResult, trials: list[InstanceRecord], jsonl: Path) -> None:
    """Raise unless ``run`` agrees with ``trials`` (deduplicated, stored order) of ``jsonl``.

    Every run must have records of at least ``n_instances`` instances. A complete
    run's metrics must equal the mean over its first ``n_instances`` instances of
    their per-instance scores (:func:`~flexbench.order_stats.merge_trials`), and its
    rates those over these instances' trials (relative tolerance 1e-9: JSON keeps
    every digit, the tolerance only absorbs the order of float additions of
    hand-written stores).
    """
    records = merge_trials(trials)
    where = f"{jsonl.with_suffix('.json')}"
    redo = "rerun the evaluation with --overwrite"
    if len(records) < run.n_instances:
        state = "missing" if not jsonl.exists() else f"has {len(records)} records"
        raise FlexBenchError(f"{where}: says n = {run.n_instances} but its records {jsonl.name} {state}; the "
                             f"records were deleted or truncated: {redo}")
    if not run.complete:
        return
    from flexbench.harness import aggregate_rates

    covered = records[:run.n_instances]
    ids = {r.instance_id for r in covered}
    try:
        metrics = {name: float(np.mean([r.metrics[name] for r in covered])) if covered else 0.0
                   for name in run.metrics}
    except KeyError as err:
        raise FlexBenchError(f"{where}: metric {err} is not in every record of {jsonl.name}; {redo}") from None
    recomputed = {**metrics, **aggregate_rates([t for t in trials if t.instance_id in ids])}
    for name, value in {**run.metrics, **run.rates}.items():
        again = recomputed.get(name)
        if again is None or not math.isclose(value, again, rel_tol=1e-9, abs_tol=1e-12):
            raise FlexBenchError(f"{where}: {name} = {value!r} but its {run.n_instances} records in {jsonl.name} give "
                                 f"{again!r}; the file was edited: {redo}")


VERSION_KEYS = ("protocol_version", "prompt_version", "prompt_mode")
"""Provenance fields a resumed run must share with the stored one: records made under an older protocol
or prompt are never mixed with new ones."""


def _check_compatible(key: RunKey, stored: RunResult, config: Mapping[str, Any], fingerprint: str,
                      versions: Mapping[str, Any]) -> None:
    prov = stored.provenance
    where = f"{key.ranker} on {key.dataset}/{key.need}/{key.split}"
    changed = [k for k in VERSION_KEYS if k in versions and prov.get(k) != versions[k]]
    if changed:
        was = ", ".join(f"{k} {prov.get(k)!r} -> {versions[k]!r}" for k in changed)
        raise FlexBenchError(f"stored run {where} was made under another protocol or prompt ({was}); "
                             f"rerun with --overwrite to replace it")
    if prov.get("data_fingerprint") != fingerprint:
        raise FlexBenchError(f"stored run {where} was computed on other data (fingerprint "
                             f"{str(prov.get('data_fingerprint'))[:12]} vs {fingerprint[:12]}); "
                             f"rerun with --overwrite to replace it")
    old = json.loads(json.dumps(prov.get("config"), sort_keys=True, default=str))
    new = json.loads(json.dumps(dict(config), sort_keys=True, default=str))
    if old != new:
        changed = sorted(k for k in set(old or {}) | set(new) if (old or {}).get(k) != new.get(k))
        raise FlexBenchError(f"stored run {where} used another config (differs in "
                             f"{', '.join(changed)}); rerun with --overwrite to replace it")
