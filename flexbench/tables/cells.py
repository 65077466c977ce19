"""Fill a :class:`~flexbench.tables.layout.TableLayout` from stored runs (no rendering here).

Every cell is looked up by ``RunKey(row.ranker, run_dataset(row, group), group.need, "test")``
(the group's dataset, or its dense variant for a dense row);
a cell without a stored run, without the metric, from an incomplete run, or from a
trained run that records another train need than the table's (or none) is never
filled, only labelled.

Gain row (paper: "vs Qwen2.5-3B-Instruct"): ``100 * (m_flexrec - m_zero-shot) / m_zero-shot``
from the two stored cells of the same column, missing unless both are filled.

Significance: in each column, each ``ours`` row is tested (paired tests on the
per-instance metric of the JSONL records, :mod:`flexbench.tables.significance`)
against the strongest filled row of its comparison pool (highest stored mean;
ties go to the row listed first).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flexbench.tables.layout import (
    GAIN_BASE,
    GAIN_ROW,
    GAIN_TARGET,
    ColumnGroup,
    Row,
    TableLayout,
    run_dataset,
)
from flexbench.tables.paper import PaperNumbers
from flexbench.tables.significance import compare_records
from flexbench.tables.store import ResultSource
from flexbench.types import InstanceRecord, RunKey, RunResult

TEST_SPLIT = "test"


class CellStatus(StrEnum):
    """Why a cell is (not) filled."""

    OK = "ok"
    MISSING = "missing"
    INCOMPLETE = "incomplete"
    OTHER_TRAIN_NEED = "other-train-need"
    TRAIN_NEED_UNRECORDED = "train-need-unrecorded"


@dataclass(frozen=True, slots=True)
class Cell:
    """One value of a table: ours (``value``), the paper's (``paper``) and why it is shown as it is."""

    metric: str
    value: float | None
    paper: float | None
    status: CellStatus
    mark: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class ResolvedRow:
    """A row's cells per column group (``cells[g][m]``) and, per group, our model.

    ``models[g]`` is None where the group has no stored run, ``""`` where our model
    is the paper's (or the method has none to compare), else our model's name.
    """

    row: Row
    cells: tuple[tuple[Cell, ...], ...]
    models: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class ResolvedTable:
    """A table layout with every cell resolved, plus the runs behind the filled cells."""

    layout: TableLayout
    rows: tuple[ResolvedRow, ...]
    gain: tuple[tuple[Cell, ...], ...] | None
    runs: tuple[RunResult, ...]

    def row(self, ranker: str) -> ResolvedRow:
        """The first resolved row of ``ranker``."""
        return next(r for r in self.rows if r.row.ranker == ranker)


def normalise_model(name: str) -> str:
    """Compare-friendly model name: last path component, lower case (``Qwen/Qwen2.5-3B-Instruct`` ->
    ``qwen2.5-3b-instruct``)."""
    return name.rstrip("/").rsplit("/", 1)[-1].lower()


def run_key(row: Row, group: ColumnGroup) -> RunKey:
    """The stored run behind ``row`` in ``group``."""
    return RunKey(row.ranker, run_dataset(row, group), group.need, TEST_SPLIT)


def _status(layout: TableLayout, row: Row, group: ColumnGroup, run: RunResult | None) -> tuple[CellStatus, str]:
    return run_status(run, layout.train_need_of(row, group))


def run_status(run: RunResult | None, expected: str | None) -> tuple[CellStatus, str]:
    """Whether ``run`` can fill a cell whose trained policy must record train need ``expected``
    (None: not a trained row), and a note saying why not."""
    if run is None:
        return CellStatus.MISSING, ""
    stored = run.provenance.get("train_need")
    if expected is not None and not stored:
        return CellStatus.TRAIN_NEED_UNRECORDED, "rerun eval with --set train_need=<need>"
    if expected is not None and stored != expected:
        return CellStatus.OTHER_TRAIN_NEED, f"stored run trained on {stored}"
    if not run.complete:
        return CellStatus.INCOMPLETE, f"{run.n_instances} instances so far"
    return CellStatus.OK, ""


def _model_note(row: Row, run: RunResult | None, status: CellStatus) -> str | None:
    if run is None or status is CellStatus.MISSING:
        return None
    if row.paper_model is None:
        return ""
    model = run.provenance.get("model")
    if not model:
        return "model not recorded"  # never presumed to be the paper's
    return "" if normalise_model(str(model)) == normalise_model(row.paper_model) else str(model)


class _Resolver:
    def __init__(self, layout: TableLayout, store: ResultSource, paper: PaperNumbers) -> None:
        self.layout, self.store, self.paper = layout, store, paper
        self.runs: dict[RunKey, RunResult | None] = {}
        self.records: dict[RunKey, list[InstanceRecord]] = {}

    def run(self, key: RunKey) -> RunResult | None:
        if key not in self.runs:
            self.runs[key] = self.store.load_run(key)
        return self.runs[key]

    def recs(self, key: RunKey) -> list[InstanceRecord]:
        if key not in self.records:
            self.records[key] = self.store.load_records(key)
        return self.records[key]

    def cell(self, row: Row, group: ColumnGroup, metric: str) -> Cell:
        run = self.run(run_key(row, group))
        status, note = _status(self.layout, row, group, run)
        if status is CellStatus.OK and metric not in run.metrics:
            status, note = CellStatus.MISSING, f"run has no {metric}"
        value = float(run.metrics[metric]) if status is CellStatus.OK else None
        paper = self.paper.get(self.layout.table_id, group.dataset, group.need, row.ranker, metric)
        return Cell(metric, value, paper, status, note=note)

    def resolve_row(self, row: Row) -> ResolvedRow:
        cells = tuple(tuple(self.cell(row, g, m) for m in g.metrics) for g in self.layout.groups)
        models = []
        for g, group_cells in zip(self.layout.groups, cells, strict=True):
            status = group_cells[0].status if group_cells else CellStatus.MISSING
            models.append(_model_note(row, self.run(run_key(row, g)), status))
        return ResolvedRow(row, cells, tuple(models))

    def mark(self, rows: list[ResolvedRow]) -> list[ResolvedRow]:
        by_ranker = {r.row.ranker: r for r in rows}
        out = []
        for rr in rows:
            if not rr.row.ours:
                out.append(rr)
                continue
            pool = [by_ranker[p.ranker] for p in self.layout.comparison_pool(rr.row)]
            groups = []
            for gi, group in enumerate(self.layout.groups):
                groups.append(tuple(self._marked(rr, pool, gi, mi, group) for mi in range(len(group.metrics))))
            out.append(ResolvedRow(rr.row, tuple(groups), rr.models))
        return out

    def _marked(self, rr: ResolvedRow, pool: list[ResolvedRow], gi: int, mi: int, group: ColumnGroup) -> Cell:
        cell = rr.cells[gi][mi]
        filled = [p for p in pool if p.cells[gi][mi].status is CellStatus.OK]
        if cell.status is not CellStatus.OK or not filled:
            return cell
        best = max(filled, key=lambda p: p.cells[gi][mi].value)  # max keeps the first of ties
        test = compare_records(self.recs(run_key(rr.row, group)), self.recs(run_key(best.row, group)),
                               cell.metric)
        if test is None:
            return cell
        note = f"vs {best.row.ranker}: p={test.p_value:.3g}"
        return Cell(cell.metric, cell.value, cell.paper, cell.status, test.mark(), note)

    def gain(self, rows: list[ResolvedRow]) -> tuple[tuple[Cell, ...], ...]:
        base, target = (next(r for r in rows if r.row.ranker == n) for n in (GAIN_BASE, GAIN_TARGET))
        groups = []
        for gi, group in enumerate(self.layout.groups):
            cells = []
            for mi, metric in enumerate(group.metrics):
                b, t = base.cells[gi][mi], target.cells[gi][mi]
                ok = b.status is CellStatus.OK and t.status is CellStatus.OK and b.value != 0
                value = 100.0 * (t.value - b.value) / b.value if ok else None
                paper = self.paper.get(self.layout.table_id, group.dataset, group.need, GAIN_ROW, metric)
                cells.append(Cell(metric, value, paper, CellStatus.OK if ok else CellStatus.MISSING))
            groups.append(tuple(cells))
        return tuple(groups)


def resolve_table(layout: TableLayout, store: ResultSource, paper: PaperNumbers) -> ResolvedTable:
    """Resolve every cell of ``layout`` from ``store``; see the module docstring for the rules."""
    resolver = _Resolver(layout, store, paper)
    rows = resolver.mark([resolver.resolve_row(r) for r in layout.rows])
    gain = resolver.gain(rows) if layout.gain_row else None
    used = {run_key(rr.row, g): resolver.run(run_key(rr.row, g))
            for rr in rows for g, cells in zip(layout.groups, rr.cells, strict=True)
            if cells and cells[0].status in (CellStatus.OK, CellStatus.INCOMPLETE)}
    runs = tuple(sorted((r for r in used.values() if r is not None), key=lambda r: r.key.path_parts()))
    return ResolvedTable(layout, tuple(rows), gain, runs)
