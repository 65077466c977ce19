"""Results out: stored runs as TREC run files, need labels as qrels, JSON Lines, per-instance metric tables.

Formats (``flexbench export``, docs/ADD_A_RANKER.md):

* **TREC run** (``<dataset>.<need>.<split>.<ranker>.run``): ``qid Q0 docid rank score tag``,
  one line per candidate of every stored instance, ``qid`` = instance ID, the
  ranking as it was *scored* (after the harness's repair, so always the K
  candidates), ``rank`` 1..K and ``score = K + 1 - rank`` (strictly decreasing,
  so every tool reads the same order). A run under ``P > 1`` display orders
  (``--permutations``) writes the ranking of display order 0: a run file holds one
  ranking per query.
* **qrels** (``<dataset>.<need>.<split>.qrels``): ``qid 0 docid grade`` for every
  candidate of every instance of the split, with integer grades mapped from our
  float gains by a :class:`GradeMapping` stated in a ``#`` header comment:

  - ``esci``: E/S/C/I (gains 1, 0.1, 0.01, 0) as 3/2/1/0, the usual ESCI grading;
  - ``integer``: gains that are all whole numbers are the grades (ML-1M interest,
    ``2^rating - 1``), so NDCG on the qrels *is* our NDCG;
  - ``scaled``: any other float gains as ``round(scale * gain)`` (default
    ``scale = 100``): NDCG is invariant to scaling gains, so only the rounding to
    ``1 / scale`` separates the qrels' NDCG from ours.

  trec_eval and ``pytrec_eval.parse_qrel`` do not read comment lines: drop them
  with ``grep -v '^#'`` or export with ``--no-header``.
* **JSON Lines** (``<...>.<ranker>.jsonl``): one object per instance and display order,
  the run key and the stored record (raw output, emitted and repaired IDs, defect
  counts, metrics, the permutation and the order shown).
* **per-instance metrics** (``metrics.parquet`` or ``metrics.csv``): one row per
  (run, instance): key, ``complete``, parse and defect counts and every metric (the
  mean over the display orders where a run has several).

Python API: :func:`metrics_frame` (pandas), :func:`to_ranx` (``ranx.Run``,
``ranx.Qrels``), :func:`export_runs`. Labels are read from the prepared dataset
and only when its fingerprint is the run's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flexbench.errors import FlexBenchError
from flexbench.results import ResultStore, atomic_write_text, record_to_json
from flexbench.types import InstanceRecord, NeedLabels, RunKey, RunResult

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SCALE = 100
ESCI_GRADES: dict[str, int] = {"E": 3, "S": 2, "C": 1, "I": 0}


class GradeRule(StrEnum):
    """How float gains become integer qrels grades (module docstring)."""

    ESCI = "esci"
    INTEGER = "integer"
    SCALED = "scaled"


class ExportPart(StrEnum):
    """What ``flexbench export`` writes."""

    RUN = "run"
    QRELS = "qrels"
    JSONL = "jsonl"
    METRICS = "metrics"


@dataclass(frozen=True, slots=True)
class GradeMapping:
    """The gain -> grade rule of one need's qrels."""

    need: str
    rule: GradeRule
    scale: int = DEFAULT_SCALE

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise FlexBenchError(f"--scale must be a positive integer, got {self.scale}")

    def grade(self, gain: float) -> int:
        """The integer grade of ``gain``."""
        if gain < 0 or not math.isfinite(gain):
            raise FlexBenchError(f"need {self.need!r}: gain {gain!r} has no qrels grade (gains must be finite, >= 0)")
        if self.rule is GradeRule.ESCI:
            from needs.esci import GRADES

            for letter, value in GRADES.items():
                if math.isclose(gain, value, rel_tol=1e-9, abs_tol=1e-12):
                    return ESCI_GRADES[letter]
            raise FlexBenchError(f"need 'esci': gain {gain!r} is not one of the ESCI gains {dict(GRADES)}")
        return int(gain) if self.rule is GradeRule.INTEGER else round(self.scale * gain)

    def describe(self) -> str:
        """One sentence stating the mapping (the qrels header and the docs)."""
        if self.rule is GradeRule.ESCI:
            return "ESCI labels E/S/C/I (gains 1, 0.1, 0.01, 0) as grades 3/2/1/0"
        if self.rule is GradeRule.INTEGER:
            return "grade = gain (every gain of this need is a whole number)"
        return f"grade = round({self.scale} * gain) (float gains; NDCG is scale-invariant, only rounding differs)"


def grade_mapping(need: str, gains: Iterable[float], scale: int = DEFAULT_SCALE) -> GradeMapping:
    """The mapping of ``need`` given all its ``gains`` (module docstring)."""
    if need == "esci":
        return GradeMapping(need, GradeRule.ESCI, scale)
    whole = all(float(g).is_integer() for g in gains)
    return GradeMapping(need, GradeRule.INTEGER if whole else GradeRule.SCALED, scale)


def _check_id(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise FlexBenchError(f"{what} {value!r} contains whitespace; TREC files cannot hold it")
    return value


def trec_run_lines(records: Sequence[InstanceRecord], tag: str) -> list[str]:
    """``qid Q0 docid rank score tag`` lines of the scored rankings (module docstring)."""
    _check_id(tag, "run tag")
    lines = []
    for rec in records:
        k = len(rec.repaired_ids)
        qid = _check_id(rec.instance_id, "instance ID")
        lines += [f"{qid} Q0 {_check_id(doc, 'item ID')} {rank} {k + 1 - rank} {tag}"
                  for rank, doc in enumerate(rec.repaired_ids, start=1)]
    return lines


def qrels_lines(labels: Mapping[str, NeedLabels], mapping: GradeMapping) -> list[str]:
    """``qid 0 docid grade`` for every candidate of every labelled instance, by instance ID."""
    return [f"{_check_id(iid, 'instance ID')} 0 {_check_id(doc, 'item ID')} {mapping.grade(g)}"
            for iid in sorted(labels) for doc, g in zip(labels[iid].candidate_ids, labels[iid].gains, strict=True)]


def read_trec_run(path: Path) -> dict[str, list[tuple[str, int, float]]]:
    """``qid -> [(docid, rank, score), ...]`` in file order; blank and ``#`` lines skipped.

    A line that is not ``qid Q0 docid rank score tag`` (6 fields, integer rank,
    finite score) is a one-line error naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FlexBenchError(f"run file {path} does not exist")
    out: dict[str, list[tuple[str, int, float]]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        try:
            if len(fields) != 6:
                raise ValueError(f"{len(fields)} fields")
            rank, score = int(fields[3]), float(fields[4])
            if not math.isfinite(score):
                raise ValueError("score is not finite")
        except ValueError as err:
            raise FlexBenchError(f"{path}:{number}: expected 'qid Q0 docid rank score tag' ({err}): "
                                 f"{line.strip()[:80]!r}") from None
        out.setdefault(fields[0], []).append((fields[2], rank, score))
    return out


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``qid -> {docid: grade}`` of a qrels file; blank and ``#`` lines skipped."""
    out: dict[str, dict[str, int]] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4 or not fields[3].lstrip("-").isdigit():
            raise FlexBenchError(f"{path}:{number}: expected 'qid 0 docid grade': {line.strip()[:80]!r}")
        out.setdefault(fields[0], {})[fields[2]] = int(fields[3])
    return out


def scored_records(store: ResultStore, run: RunResult) -> list[InstanceRecord]:
    """The records behind ``run``'s aggregate (its first ``n_instances``; all stored ones if incomplete)."""
    records = store.load_records(run.key)
    return records[:run.n_instances] if run.complete else records


def scored_trials(store: ResultStore, run: RunResult) -> list[InstanceRecord]:
    """Every (instance, display order) record of the instances of :func:`scored_records`."""
    ids = {r.instance_id for r in scored_records(store, run)}
    return [t for t in store.load_trials(run.key) if t.instance_id in ids]


def run_labels(run: RunResult) -> dict[str, NeedLabels]:
    """The labels of ``run``'s need and split, from the prepared dataset with the run's fingerprint."""
    from flexbench.catalog import open_dataset

    key = run.key
    data = open_dataset(key.dataset, auto_prepare=False)
    stored = run.provenance.get("data_fingerprint")
    if stored and stored != data.fingerprint:
        raise FlexBenchError(f"run {key.ranker} on {key.dataset}/{key.need}/{key.split} was computed on data "
                             f"{str(stored)[:12]}, the prepared {key.dataset} here is {data.fingerprint[:12]}; "
                             f"prepare the same data to export its labels")
    return data.labels(key.need, key.split)


def metrics_frame(store: ResultStore, runs: Sequence[RunResult] | None = None) -> pd.DataFrame:
    """Per-instance metrics of ``runs`` (default: every stored run) as one pandas DataFrame."""
    import pandas as pd

    from flexbench.metrics import METRIC_NAMES

    rows = []
    for run in store.load_runs() if runs is None else runs:
        k = run.key
        for rec in scored_records(store, run):
            rows.append({"dataset": k.dataset, "need": k.need, "split": k.split, "ranker": k.ranker,
                         "instance_id": rec.instance_id, "complete": run.complete, "parsed": rec.parsed,
                         "n_emitted": len(rec.output_ids), "n_invalid": rec.n_invalid,
                         "n_duplicate": rec.n_duplicate, "n_padded": rec.n_padded,
                         **{m: rec.metrics.get(m) for m in METRIC_NAMES}})
    columns = ["dataset", "need", "split", "ranker", "instance_id", "complete", "parsed", "n_emitted", "n_invalid",
               "n_duplicate", "n_padded", *METRIC_NAMES]
    return pd.DataFrame(rows, columns=columns)


def to_ranx(store: ResultStore, key: RunKey, labels: Mapping[str, NeedLabels] | None = None,
            scale: int = DEFAULT_SCALE) -> tuple[Any, Any]:
    """``(ranx.Run, ranx.Qrels)`` of a stored run: the scores and grades of the TREC files."""
    from ranx import Qrels, Run

    run = store.load_run(key)
    if run is None:
        raise FlexBenchError(f"no stored run {key.ranker} on {key.dataset}/{key.need}/{key.split}")
    records = scored_records(store, run)
    labels = run_labels(run) if labels is None else labels
    mapping = grade_mapping(key.need, (g for lab in labels.values() for g in lab.gains), scale)
    scores = {r.instance_id: {d: float(len(r.repaired_ids) + 1 - i) for i, d in enumerate(r.repaired_ids, start=1)}
              for r in records}
    grades = {iid: {d: mapping.grade(g) for d, g in zip(lab.candidate_ids, lab.gains, strict=True)}
              for iid, lab in labels.items() if iid in scores}
    return Run.from_dict(scores, name=key.ranker), Qrels.from_dict(grades)


def _stem(key: RunKey) -> str:
    return f"{key.dataset}.{key.need}.{key.split}"


def _qrels_text(run: RunResult, labels: Mapping[str, NeedLabels], scale: int, header: bool) -> str:
    key = run.key
    mapping = grade_mapping(key.need, (g for lab in labels.values() for g in lab.gains), scale)
    head = [(f"# FlexBench qrels: {key.dataset} / {key.need} / {key.split}, {len(labels)} instances, data "
            f"{str(run.provenance.get('data_fingerprint'))[:12]}"),
            f"# grades: {mapping.describe()}", "# format: qid 0 docid grade"] if header else []
    return "\n".join([*head, *qrels_lines(labels, mapping)]) + "\n"


def export_runs(store: ResultStore, runs: Sequence[RunResult], out_dir: Path, *,
                parts: Sequence[ExportPart] = tuple(ExportPart), metrics_format: str = "parquet",
                scale: int = DEFAULT_SCALE, header: bool = True) -> list[Path]:
    """Write the ``parts`` of every run in ``runs`` under ``out_dir`` (module docstring); returns the paths."""
    if metrics_format not in ("parquet", "csv"):
        raise FlexBenchError(f"--metrics-format must be parquet or csv, got {metrics_format!r}")
    out_dir = Path(out_dir)
    written: list[Path] = []
    qrels_done: set[str] = set()
    for run in runs:
        records, stem = scored_records(store, run), _stem(run.key)
        if ExportPart.RUN in parts:
            path = out_dir / f"{stem}.{run.key.ranker}.run"
            atomic_write_text(path, "\n".join(trec_run_lines(records, f"flexbench-{run.key.ranker}")) + "\n")
            written.append(path)
        if ExportPart.JSONL in parts:
            path = out_dir / f"{stem}.{run.key.ranker}.jsonl"
            atomic_write_text(path, "".join(json.dumps({"key": {"ranker": run.key.ranker, "dataset": run.key.dataset,
                                                                "need": run.key.need, "split": run.key.split},
                                                        **record_to_json(r)}, ensure_ascii=False) + "\n"
                                            for r in scored_trials(store, run)))
            written.append(path)
        if ExportPart.QRELS in parts and stem not in qrels_done:
            path = out_dir / f"{stem}.qrels"
            atomic_write_text(path, _qrels_text(run, run_labels(run), scale, header))
            written.append(path)
            qrels_done.add(stem)
    if ExportPart.METRICS in parts and runs:
        frame = metrics_frame(store, runs)
        path = out_dir / f"metrics.{metrics_format}"
        out_dir.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False) if metrics_format == "parquet" else frame.to_csv(path, index=False)
        written.append(path)
    return written
