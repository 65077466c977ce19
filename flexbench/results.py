"""Versioned result store: per-instance JSONL records and per-run JSON aggregates.

Layout under the root (default ``<data>/results``)::

    <dataset>/<need>/<split>/<ranker>.jsonl   one InstanceRecord per line, appended per batch
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
deduplicated by instance ID). A rerun whose config or data fingerprint differs
from the stored run is refused unless the caller asks to overwrite.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.paths import results_dir
from flexbench.types import InstanceRecord, RunKey, RunResult

RESULTS_SCHEMA_VERSION = 1


def record_to_json(record: InstanceRecord) -> dict[str, Any]:
    """JSON-ready dict of a record."""
    out = asdict(record)
    out["output_ids"], out["repaired_ids"] = list(record.output_ids), list(record.repaired_ids)
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
    )


def result_to_json(result: RunResult) -> dict[str, Any]:
    """The aggregate JSON object of a run (module docstring)."""
    return {"schema_version": RESULTS_SCHEMA_VERSION, "key": asdict(result.key),
            "n_instances": result.n_instances, "metrics": dict(result.metrics),
            "rates": dict(result.rates), "provenance": dict(result.provenance),
            "complete": result.complete}


def result_from_json(data: Mapping[str, Any]) -> RunResult:
    """Inverse of :func:`result_to_json`; refuses an unknown schema version."""
    version = data.get("schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        raise FlexBenchError(f"stored result has schema_version {version}, this FlexBench reads "
                             f"{RESULTS_SCHEMA_VERSION}; rerun the evaluation with --overwrite")
    return RunResult(key=RunKey(**data["key"]), n_instances=int(data["n_instances"]),
                     metrics=dict(data["metrics"]), rates=dict(data["rates"]),
                     provenance=dict(data["provenance"]), complete=bool(data["complete"]))


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


def dedupe(records: Iterable[InstanceRecord]) -> list[InstanceRecord]:
    """Records with each instance ID once (first occurrence kept), in stored order."""
    out: dict[str, InstanceRecord] = {}
    for record in records:
        out.setdefault(record.instance_id, record)
    return list(out.values())


class RunWriter:
    """Appends one run's records; ``done`` maps the instance IDs already stored to their records."""

    def __init__(self, path: Path, done: Mapping[str, InstanceRecord]) -> None:
        self.path = path
        self.done: dict[str, InstanceRecord] = dict(done)

    def append(self, records: Iterable[InstanceRecord]) -> None:
        """Append ``records`` not stored yet, then flush and fsync (one call per batch)."""
        fresh = [r for r in records if r.instance_id not in self.done]
        if not fresh:
            return
        payload = "".join(json.dumps(record_to_json(r), ensure_ascii=False) + "\n" for r in fresh)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        self.done.update((r.instance_id, r) for r in fresh)


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

    def load_runs(self) -> list[RunResult]:
        """Every stored aggregate, sorted by key."""
        runs = [result_from_json(json.loads(p.read_text())) for p in self.root.glob("*/*/*/*.json")]
        return sorted(runs, key=lambda r: r.key.path_parts())

    def load_run(self, key: RunKey) -> RunResult | None:
        """The stored aggregate of ``key``, or ``None``."""
        path = self.run_paths(key)[1]
        return result_from_json(json.loads(path.read_text())) if path.exists() else None

    def load_records(self, key: RunKey) -> list[InstanceRecord]:
        """Stored records of ``key``, deduplicated by instance ID, in stored order."""
        return dedupe(record_from_json(row) for row in read_jsonl(self.run_paths(key)[0]))

    def write_aggregate(self, result: RunResult) -> Path:
        """Write ``result``'s aggregate JSON atomically; returns its path."""
        path = self.run_paths(result.key)[1]
        atomic_write_text(path, json.dumps(result_to_json(result), indent=2, sort_keys=True) + "\n")
        return path

    def delete_run(self, key: RunKey) -> None:
        """Remove both files of ``key`` (``--overwrite``)."""
        for path in self.run_paths(key):
            path.unlink(missing_ok=True)

    def open_run(self, key: RunKey, *, config: Mapping[str, Any], data_fingerprint: str,
                 overwrite: bool = False) -> RunWriter:
        """Prepare ``key`` for (re)running: check compatibility, repair the JSONL, return a writer.

        The stored run must have the same ``config`` and ``data_fingerprint``;
        otherwise this raises :class:`FlexBenchError` suggesting ``--overwrite``,
        unless ``overwrite`` is set, in which case the stored run is deleted.
        """
        jsonl, _ = self.run_paths(key)
        if overwrite:
            self.delete_run(key)
        stored = self.load_run(key)
        if stored is None and jsonl.exists() and jsonl.stat().st_size:
            raise FlexBenchError(f"{jsonl} has records but no aggregate to check them against; "
                                 f"rerun with --overwrite")
        if stored is not None:
            _check_compatible(key, stored, config, data_fingerprint)
        rows = read_jsonl(jsonl, repair=True)
        return RunWriter(jsonl, {r.instance_id: r for r in dedupe(map(record_from_json, rows))})


def _check_compatible(key: RunKey, stored: RunResult, config: Mapping[str, Any], fingerprint: str) -> None:
    prov = stored.provenance
    where = f"{key.ranker} on {key.dataset}/{key.need}/{key.split}"
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


@functools.cache
def code_version() -> dict[str, Any]:
    """``{"package", "git_commit", "dirty"}`` of the running code (git fields ``None`` outside a checkout)."""
    from flexbench import __version__

    out: dict[str, Any] = {"package": __version__, "git_commit": None, "dirty": None}
    repo = Path(__file__).resolve().parent.parent
    if shutil.which("git") and (repo / ".git").exists():
        git = ["git", "-C", str(repo)]
        try:
            out["git_commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                                               text=True, timeout=10, check=True).stdout.strip()
            status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout
            out["dirty"] = bool(status.strip())
        except (subprocess.SubprocessError, OSError):
            pass
    return out


@functools.cache
def hardware() -> dict[str, Any]:
    """CPU model, core count and GPU name (``None`` without a visible GPU)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": _gpu_name(), "platform": platform.platform()}


def _gpu_name() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    names = [n.strip() for n in out.splitlines() if n.strip()]
    return ", ".join(names) or None
