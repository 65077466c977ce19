"""Leaderboards as pure renderers over stored results: rich tables and Markdown files.

One board per (dataset, need, split), one row per stored run. Metric columns are
higher-is-better (↑), the invalid-ID rate lower-is-better (↓). A run that did
not finish shows "—" in every metric cell: it is never averaged with anything.
A run limited to its first ``n`` instances shows ``n/N`` in the ``n`` column.

Significance (paired, per metric, over the instance IDs both runs scored):
the best complete run's value is bold; a value marked ``†`` is significantly
worse than the best (two-sided p < ``alpha`` under *both* the paired t-test,
``scipy.stats.ttest_rel``, and the Fisher randomization test with seeded
random sign flips of the per-instance differences; Fisher 1935, and Smucker,
Allan & Carterette, CIKM 2007, doi:10.1145/1321440.1321528). No correction for
multiple comparisons is applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexbench.metrics import METRIC_NAMES
from flexbench.ranker import REGISTRY, RankerKind
from flexbench.results import ResultStore
from flexbench.types import RunResult

WORSE_MARK = "†"
MISSING = "—"
KIND_ORDER: tuple[str, ...] = (*(k.value for k in RankerKind), "other")
METRIC_TITLES: dict[str, str] = {"ndcg@5": "NDCG@5", "ndcg@10": "NDCG@10", "ndcg@30": "NDCG@30",
                                 "recall@5": "Recall@5", "precision@5": "P@5", "mrr@5": "MRR@5"}


@dataclass(frozen=True, slots=True)
class Cell:
    """One metric value of a row; ``None`` when the run is incomplete."""

    value: float | None
    best: bool = False
    worse: bool = False  # significantly worse than the best run


@dataclass(frozen=True, slots=True)
class Row:
    """One run on a board."""

    ranker: str
    kind: str
    cells: Mapping[str, Cell]
    n: str
    invalid_rate: float | None


@dataclass(frozen=True, slots=True)
class Board:
    """All runs of one (dataset, need, split)."""

    dataset: str
    need: str
    split: str
    rows: tuple[Row, ...]


def kind_of(run: RunResult) -> str:
    """Registry kind of the run's ranker (``config["ranker"]`` or the label before ``[``)."""
    name = str((run.provenance.get("config") or {}).get("ranker") or run.key.ranker.split("[")[0])
    entry = REGISTRY.get(name)
    return entry.kind.value if entry else "other"


def _row_order(run: RunResult) -> tuple[int, int, str]:
    names = list(REGISTRY)
    base = run.key.ranker.split("[")[0]
    return (KIND_ORDER.index(kind_of(run)), names.index(base) if base in names else len(names),
            run.key.ranker)


def paired_pvalues(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    """Two-sided ``(t-test p, Fisher randomization p)`` for paired samples ``a`` and ``b``.

    Randomization: ``p = (1 + #{s : |mean(s * d)| >= |mean(d)|}) / (1 + n_resamples)``
    with ``d = a - b`` and ``s`` uniform random signs (seeded).
    """
    from scipy.stats import ttest_rel

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2 or np.allclose(d, 0.0):
        return 1.0, 1.0
    t_p = float(ttest_rel(a, b).pvalue)
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(n_resamples, len(d)))
    observed = abs(d.mean())
    extreme = int((np.abs(signs @ d) / len(d) >= observed - 1e-12).sum())
    return (1.0 if np.isnan(t_p) else t_p), (1 + extreme) / (1 + n_resamples)


def _n_label(run: RunResult) -> str:
    limit, available = run.provenance.get("limit"), run.provenance.get("n_available")
    expected = min(limit, available) if limit and available else available
    if not run.complete:
        return f"{run.n_instances}/{expected} (incomplete)" if expected else f"{run.n_instances} (incomplete)"
    return f"{run.n_instances}/{available}" if limit and available and run.n_instances < available \
        else str(run.n_instances)


def build_board(store: ResultStore, runs: Sequence[RunResult], *, alpha: float = 0.05,
                n_resamples: int = 1000, seed: int = 0) -> Board:
    """Rows and significance marks for runs of one (dataset, need, split)."""
    runs = sorted(runs, key=_row_order)
    complete = [r for r in runs if r.complete and r.n_instances]
    per_instance = {r.key: {rec.instance_id: rec.metrics for rec in store.load_records(r.key)}
                    for r in complete}
    marks: dict[tuple[str, str], Cell] = {}
    for metric in METRIC_NAMES:
        if not complete:
            break
        best = max(complete, key=lambda r: r.metrics[metric])
        for run in complete:
            worse = run is not best and _worse(per_instance[best.key], per_instance[run.key], metric,
                                               alpha=alpha, n_resamples=n_resamples, seed=seed)
            marks[run.key.ranker, metric] = Cell(run.metrics[metric],
                                                 best=run.metrics[metric] == best.metrics[metric], worse=worse)
    rows = tuple(
        Row(ranker=r.key.ranker, kind=kind_of(r),
            cells={m: marks.get((r.key.ranker, m), Cell(None)) for m in METRIC_NAMES},
            n=_n_label(r), invalid_rate=r.rates.get("invalid_rate") if r.complete else None)
        for r in runs)
    key = runs[0].key
    return Board(key.dataset, key.need, key.split, rows)


def _worse(best: Mapping[str, Mapping[str, float]], other: Mapping[str, Mapping[str, float]], metric: str,
           *, alpha: float, n_resamples: int, seed: int) -> bool:
    shared = sorted(set(best) & set(other))
    a = np.array([best[i][metric] for i in shared])
    b = np.array([other[i][metric] for i in shared])
    t_p, fisher_p = paired_pvalues(a, b, n_resamples=n_resamples, seed=seed)
    return bool(a.mean() > b.mean() and t_p < alpha and fisher_p < alpha) if shared else False


def build_boards(store: ResultStore, *, dataset: str | None = None, **kwargs: float) -> list[Board]:
    """Boards of every stored (dataset, need, split), optionally of one dataset only."""
    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for run in store.load_runs():
        if dataset is None or run.key.dataset == dataset:
            groups.setdefault((run.key.dataset, run.key.need, run.key.split), []).append(run)
    return [build_board(store, runs, **kwargs) for _, runs in sorted(groups.items())]


def format_cell(cell: Cell, *, markdown: bool = False) -> str:
    """``0.4123``, bold when best, ``†`` when significantly worse, ``—`` when missing."""
    if cell.value is None:
        return MISSING
    text = f"{cell.value:.4f}{WORSE_MARK if cell.worse else ''}"
    if cell.best:
        return f"**{text}**" if markdown else f"[bold]{text}[/bold]"
    return text


def _header() -> list[str]:
    return ["method", "kind", *(f"{METRIC_TITLES[m]} ↑" for m in METRIC_NAMES), "n", "invalid ↓"]


def _row_values(row: Row, *, markdown: bool) -> list[str]:
    invalid = MISSING if row.invalid_rate is None else f"{100 * row.invalid_rate:.1f}%"
    return [row.ranker, row.kind, *(format_cell(row.cells[m], markdown=markdown) for m in METRIC_NAMES),
            row.n, invalid]


def legend() -> str:
    """One-paragraph explanation of the marks (shown under every rendering)."""
    return (f"↑ higher is better, ↓ lower is better. Bold: best complete run. {WORSE_MARK}: significantly "
            f"worse than the best (paired t-test and Fisher randomization test both p < 0.05, over the "
            f"instances both runs scored). {MISSING}: run incomplete, not shown. n/N: limited to n of N "
            f"instances.")


def rich_tables(boards: Sequence[Board]) -> list:
    """One :class:`rich.table.Table` per board."""
    from rich.table import Table

    tables = []
    for board in boards:
        table = Table(title=f"{board.dataset} · {board.need} · {board.split}", title_justify="left")
        for i, name in enumerate(_header()):
            table.add_column(name, justify="left" if i < 2 else "right")
        for row in board.rows:
            table.add_row(*_row_values(row, markdown=False))
        tables.append(table)
    return tables


def markdown_for(boards: Sequence[Board], dataset: str) -> str:
    """The Markdown leaderboard of ``dataset``: one section per need."""
    from needs.base import NEEDS

    note = "Generated by `flexbench leaderboard` from stored results; do not edit by hand."
    lines = [f"# FlexBench leaderboard: {dataset}", "", note, ""]
    for board in (b for b in boards if b.dataset == dataset):
        title = NEEDS[board.need].title if board.need in NEEDS else board.need
        lines += [f"## {title} (`{board.need}`, {board.split} split)", "",
                  "| " + " | ".join(_header()) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 8) + "|"]
        lines += ["| " + " | ".join(_row_values(r, markdown=True)) + " |" for r in board.rows]
        lines.append("")
    lines += [legend(), ""]
    return "\n".join(lines)


def write_markdown(boards: Sequence[Board], out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<dataset>.md`` for each dataset on the boards; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset in sorted({b.dataset for b in boards}):
        path = out_dir / f"{dataset}.md"
        path.write_text(markdown_for(boards, dataset), encoding="utf-8")
        paths.append(path)
    return paths
