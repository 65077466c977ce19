"""The one leaderboard model: boards of stored runs and the need-switch matrix, before any rendering.

A :class:`Board` holds every stored run of one (dataset, need, split), rows
grouped by kind in the registry's :class:`~flexbench.ranker.RankerKind` order
(the paper's row groups) and, within a kind, in registry order. Per metric the
best complete run is marked ``best`` and each run significantly worse than it
``worse`` (:mod:`flexbench.leaderboard.significance`); every complete cell
carries the 95 % t-interval of its mean. A run that did not finish has no
values (never a partial mean); a run limited to ``n`` of ``N`` instances says
so in ``n``. Each board carries its :class:`~flexbench.leaderboard.protocol.ProtocolCard`.
Each complete row carries its order-robustness statistics (:class:`~flexbench.order_stats.OrderStats`:
order spread, first-slot share, Kendall tau to the display order), and its values
and significance marks are over per-instance means across the display orders.

A :class:`NeedSwitch` is the cross-need matrix of one (dataset, split): each
ranker's value of one metric on every need of the dataset, and its rank among
the rankers of that need, so a reader sees whether a method's standing changes
when only the instruction changes (the claim FlexRec makes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flexbench import ranker as _ranker
from flexbench.leaderboard.protocol import (
    CHART_METRIC,
    PreparedResolver,
    ProtocolCard,
    build_card,
    code_label,
)
from flexbench.leaderboard.significance import ALPHA, t_interval, worse_than
from flexbench.metrics import METRIC_NAMES
from flexbench.order_stats import OrderStats, merge_trials, order_stats
from flexbench.ranker import RankerKind
from flexbench.results import ResultStore
from flexbench.types import RunResult

OTHER_KIND = "other"
KIND_ORDER: tuple[str, ...] = (*(k.value for k in RankerKind), OTHER_KIND)


@dataclass(frozen=True, slots=True)
class Cell:
    """One metric value of a row; ``None`` when the run is incomplete. ``interval``: its 95 % t-interval."""

    value: float | None
    best: bool = False
    worse: bool = False  # significantly worse than the best run
    interval: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One run on a board."""

    ranker: str
    kind: str
    cells: Mapping[str, Cell]
    n: str
    invalid_rate: float | None
    n_instances: int = 0
    n_available: int | None = None
    complete: bool = True
    code: str = ""
    model: str | None = None
    train_need: str | None = None
    rates: Mapping[str, float] | None = None
    order: OrderStats | None = None

    @property
    def limited(self) -> bool:
        """Whether the run covers fewer instances than its split has."""
        return self.n_available is not None and self.n_instances < self.n_available


@dataclass(frozen=True, slots=True)
class Board:
    """All runs of one (dataset, need, split), with their protocol card."""

    dataset: str
    need: str
    split: str
    rows: tuple[Row, ...]
    card: ProtocolCard | None = None
    alpha: float = ALPHA

    def groups(self) -> list[tuple[str, tuple[Row, ...]]]:
        """``(kind, rows)`` in :data:`KIND_ORDER`, kinds without rows left out."""
        return [(kind, rows) for kind in KIND_ORDER if (rows := tuple(r for r in self.rows if r.kind == kind))]


def kind_of(run: RunResult) -> str:
    """Kind of the run's ranker: its registry row (``config["ranker"]`` or the label before ``[``),
    ``external`` for a plugin or ``module:factory`` name, else ``other``."""
    name = str((run.provenance.get("config") or {}).get("ranker") or run.key.ranker.split("[")[0])
    entry = _ranker.REGISTRY.get(name) or _ranker.family_entry(name)  # looked up at call time: the table as it is now
    if entry is not None:
        return entry.kind.value
    from flexbench.plugins import is_external

    return RankerKind.EXTERNAL.value if is_external(name) else OTHER_KIND


def _row_order(run: RunResult) -> tuple[int, int, str]:
    names = list(_ranker.REGISTRY)
    base = run.key.ranker.split("[")[0]
    if _ranker.family_entry(base) is not None:  # endpoint models (openai:MODEL) right after GPT-4o
        base = "gpt-4o"
    return (KIND_ORDER.index(kind_of(run)), names.index(base) if base in names else len(names),
            run.key.ranker)


def _n_label(run: RunResult) -> str:
    limit, available = run.provenance.get("limit"), run.provenance.get("n_available")
    expected = min(limit, available) if limit and available else available
    if not run.complete:
        return f"{run.n_instances}/{expected} (incomplete)" if expected else f"{run.n_instances} (incomplete)"
    return f"{run.n_instances}/{available}" if limit and available and run.n_instances < available \
        else str(run.n_instances)


def _cells(runs: Sequence[RunResult], per_instance: Mapping, *, alpha: float, n_resamples: int,
           seed: int) -> dict[tuple[str, str], Cell]:
    complete = [r for r in runs if r.complete and r.n_instances]
    marks: dict[tuple[str, str], Cell] = {}
    for metric in METRIC_NAMES:
        if not complete:
            break
        best = max(complete, key=lambda r: r.metrics[metric])
        for run in complete:
            mine = per_instance[run.key]
            worse = run is not best and worse_than(per_instance[best.key], mine, metric, alpha=alpha,
                                                   n_resamples=n_resamples, seed=seed)
            interval = t_interval([m[metric] for m in mine.values()])
            marks[run.key.ranker, metric] = Cell(run.metrics[metric], best=run.metrics[metric] == best.metrics[metric],
                                                 worse=worse, interval=interval)
    return marks


def _row(run: RunResult, marks: Mapping[tuple[str, str], Cell], order: OrderStats | None = None) -> Row:
    prov = run.provenance
    available = prov.get("n_available")
    model = prov.get("model")
    return Row(ranker=run.key.ranker, kind=kind_of(run),
               cells={m: marks.get((run.key.ranker, m), Cell(None)) for m in METRIC_NAMES},
               n=_n_label(run), invalid_rate=run.rates.get("invalid_rate") if run.complete else None,
               n_instances=run.n_instances, n_available=int(available) if available else None,
               complete=run.complete, code=code_label(prov.get("code_version")),
               model=model if isinstance(model, str) else None,
               train_need=str(prov["train_need"]) if prov.get("train_need") else None,
               rates=dict(run.rates) if run.complete else None, order=order)


def build_board(store: ResultStore, runs: Sequence[RunResult], *, alpha: float = ALPHA, n_resamples: int = 1000,
                seed: int = 0, prepared: PreparedResolver | None = None, card: bool = True) -> Board:
    """Rows, marks and the protocol card for the runs of one (dataset, need, split)."""
    runs = sorted(runs, key=_row_order)
    per_instance, orders = {}, {}
    for run in runs:
        if run.complete and run.n_instances:
            trials = store.load_trials(run.key)
            covered = merge_trials(trials)[:run.n_instances]  # per-instance means over the display orders
            per_instance[run.key] = {rec.instance_id: rec.metrics for rec in covered}
            orders[run.key] = order_stats([t for t in trials if t.instance_id in per_instance[run.key]],
                                          int(run.provenance.get("seed") or 0))
    marks = _cells(runs, per_instance, alpha=alpha, n_resamples=n_resamples, seed=seed)
    key = runs[0].key
    return Board(key.dataset, key.need, key.split, tuple(_row(r, marks, orders.get(r.key)) for r in runs),
                 build_card(runs, prepared) if card else None, alpha)


def group_runs(runs: Sequence[RunResult], dataset: str | None = None) -> dict[tuple[str, str, str], list[RunResult]]:
    """Runs by (dataset, need, split), sorted by that key; optionally of one dataset only."""
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for run in runs:
        if dataset is None or run.key.dataset == dataset:
            groups.setdefault((run.key.dataset, run.key.need, run.key.split), []).append(run)
    return dict(sorted(groups.items()))


def build_boards(store: ResultStore, *, dataset: str | None = None, runs: Sequence[RunResult] | None = None,
                 prepared: PreparedResolver | None = None, **kwargs: float) -> list[Board]:
    """Boards of every stored (dataset, need, split) (of ``runs`` when given), optionally of one dataset only."""
    runs = store.load_runs() if runs is None else runs
    return [build_board(store, group, prepared=prepared, **kwargs)
            for group in group_runs(runs, dataset).values()]


@dataclass(frozen=True, slots=True)
class SwitchCell:
    """One ranker on one need: ``value`` of the metric (None: no complete run) and its ``rank`` (1 = best)."""

    value: float | None
    rank: int | None = None
    limited: bool = False


@dataclass(frozen=True, slots=True)
class SwitchRow:
    """One ranker across the needs; ``cells[need]``."""

    ranker: str
    kind: str
    cells: Mapping[str, SwitchCell]

    @property
    def rank_span(self) -> tuple[int, int] | None:
        """``(best rank, worst rank)`` over the needs where it was ranked."""
        ranks = [c.rank for c in self.cells.values() if c.rank is not None]
        return (min(ranks), max(ranks)) if ranks else None


@dataclass(frozen=True, slots=True)
class NeedSwitch:
    """The cross-need matrix of one (dataset, split) on ``metric`` (module docstring)."""

    dataset: str
    split: str
    metric: str
    needs: tuple[str, ...]
    rows: tuple[SwitchRow, ...]


def _ranks(boards: Sequence[Board], metric: str) -> dict[tuple[str, str], int]:
    """Competition ranks (1 = best; ties share a rank) of the complete rows of each board."""
    out = {}
    for board in boards:
        values = {r.ranker: r.cells[metric].value for r in board.rows if r.cells[metric].value is not None}
        for ranker, value in values.items():
            out[board.need, ranker] = 1 + sum(v > value for v in values.values())
    return out


def need_switch(boards: Sequence[Board], dataset: str, split: str = "test",
                metric: str = CHART_METRIC) -> NeedSwitch | None:
    """The need-switch matrix of ``dataset`` from its boards (None with fewer than two needs)."""
    mine = [b for b in boards if b.dataset == dataset and b.split == split]
    if len(mine) < 2:
        return None
    needs = tuple(b.need for b in mine)
    ranks = _ranks(mine, metric)
    order: dict[str, Row] = {}
    for board in mine:
        for row in board.rows:
            order.setdefault(row.ranker, row)
    kinds = {k: i for i, k in enumerate(KIND_ORDER)}
    first_seen = list(order)
    rankers = sorted(order, key=lambda r: (kinds.get(order[r].kind, len(kinds)), first_seen.index(r)))
    rows = []
    for ranker in rankers:
        cells = {}
        for board in mine:
            row = next((r for r in board.rows if r.ranker == ranker), None)
            value = row.cells[metric].value if row is not None else None
            cells[board.need] = SwitchCell(value, ranks.get((board.need, ranker)), bool(row and row.limited))
        rows.append(SwitchRow(ranker, order[ranker].kind, cells))
    return NeedSwitch(dataset, split, metric, needs, tuple(rows))


def need_switches(boards: Sequence[Board], metric: str = CHART_METRIC) -> list[NeedSwitch]:
    """One :class:`NeedSwitch` per (dataset, split) of ``boards`` that has at least two needs."""
    keys = sorted({(b.dataset, b.split) for b in boards})
    return [s for ds, split in keys if (s := need_switch(boards, ds, split, metric)) is not None]
