"""Figures 3 and 4: validation NDCG over training steps, from stored training logs.

A training run writes ``<checkpoints>/<...>/run.json`` (``{"method", "dataset",
"needs", "label"}``) and ``metrics.jsonl`` beside it, one JSON per line with at
least ``{"step", "split", "ndcg@5", "ndcg@10", "reward_mean"}``. A curve is drawn
from the ``split == "valid"`` lines (of that need, where lines name one) of the
single-need run whose ``label`` and need match; when several runs match, the one with most points (then the first
path) is drawn. A curve with no log is listed as missing, never invented.
PNGs are written without a timestamp or version tag, so re-plotting the same
logs gives identical files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flexbench.errors import FlexBenchError
from flexbench.tables.layout import DATASET_TITLES, FIGURES, METRIC_TITLES, FigureLayout

DEFAULT_DATASET = "kuairec"


@dataclass(frozen=True, slots=True)
class TrainingLog:
    """Validation points of one training run."""

    label: str
    dataset: str
    needs: tuple[str, ...]
    source: str  # run directory, relative to the checkpoints root
    steps: tuple[int, ...]
    values: dict[str, tuple[float, ...]]  # metric -> value per step


@dataclass(frozen=True, slots=True)
class FigureResult:
    """One rendered figure (``path`` relative to the output directory, None if nothing to draw)."""

    layout: FigureLayout
    dataset: str
    path: str | None
    drawn: tuple[str, ...]
    missing: tuple[str, ...]


def _read_log(run_json: Path, root: Path) -> TrainingLog | None:
    metrics_path = run_json.parent / "metrics.jsonl"
    try:
        meta = json.loads(run_json.read_text(encoding="utf-8"))
        lines = metrics_path.read_text(encoding="utf-8").splitlines() if metrics_path.is_file() else []
        points = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as err:
        raise FlexBenchError(f"unreadable training log under {run_json.parent} ({err}); "
                             "delete or repair it") from None
    needs = meta.get("needs", ())
    needs = (needs,) if isinstance(needs, str) else tuple(needs)
    points = sorted((p for p in points if p.get("split") == "valid" and p.get("need", needs[0] if needs else None)
                     in needs[:1]), key=lambda p: int(p["step"]))  # single-need logs: that need's lines
    if not points:
        return None
    metrics = sorted({k for p in points for k in p if k in METRIC_TITLES})
    return TrainingLog(
        label=str(meta.get("label") or meta.get("method")), dataset=str(meta.get("dataset")),
        needs=needs,
        source=run_json.parent.relative_to(root).as_posix(), steps=tuple(int(p["step"]) for p in points),
        values={m: tuple(float(p.get(m, float("nan"))) for p in points) for m in metrics})


def find_training_logs(checkpoints: Path) -> list[TrainingLog]:
    """Every run under ``checkpoints`` that has validation points, in path order."""
    root = Path(checkpoints)
    if not root.is_dir():
        return []
    logs = (_read_log(p, root) for p in sorted(root.rglob("run.json")))
    return [log for log in logs if log is not None]


def pick_curves(layout: FigureLayout, dataset: str, logs: Sequence[TrainingLog]) -> dict[str, TrainingLog]:
    """The log drawn for each curve label of ``layout`` on ``dataset`` (absent labels are missing)."""
    chosen: dict[str, TrainingLog] = {}
    for label, _ in layout.curves:
        matches = [g for g in logs if g.label == label and g.dataset == dataset and g.needs == (layout.need,)]
        if matches:
            chosen[label] = max(matches, key=lambda g: len(g.steps))  # max keeps the first of ties
    return chosen


def plot_figure(layout: FigureLayout, dataset: str, curves: dict[str, TrainingLog], out: Path) -> None:
    """Draw one panel per metric of ``layout``, one line per available curve, to PNG ``out``."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(4.2 * len(layout.metrics), 3.4), dpi=100)
    axes = fig.subplots(1, len(layout.metrics), squeeze=False)[0]
    for ax, metric in zip(axes, layout.metrics, strict=True):
        for index, (label, legend) in enumerate(layout.curves):
            log = curves.get(label)
            if log is not None and metric in log.values:  # fixed colour per curve, drawn or not
                ax.plot(log.steps, log.values[metric], marker="o", markersize=3, label=legend, color=f"C{index}")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"validation {METRIC_TITLES[metric]}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{layout.title} ({DATASET_TITLES.get(dataset, dataset)})", fontsize=10)
    missing = [legend for label, legend in layout.curves if label not in curves]
    fig.tight_layout(rect=(0, 0.06 if missing else 0, 1, 1))
    if missing:
        fig.text(0.01, 0.01, "missing (no training log stored): " + ", ".join(missing), fontsize=8, color="#a00")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, format="png", metadata={"Software": None})  # no version tag: reproducible bytes
    os.replace(tmp, out)


def write_figures(checkpoints: Path, out_dir: Path,
                  layouts: Sequence[FigureLayout] = FIGURES) -> list[FigureResult]:
    """Plot every figure for every dataset that has at least one of its curves."""
    logs = find_training_logs(checkpoints)
    results = []
    for layout in layouts:
        labels = {label for label, _ in layout.curves}
        datasets = sorted({g.dataset for g in logs if g.label in labels and g.needs == (layout.need,)})
        for dataset in datasets or [DEFAULT_DATASET]:
            curves = pick_curves(layout, dataset, logs)
            missing = tuple(label for label, _ in layout.curves if label not in curves)
            drawn = tuple(f"{label} ({curves[label].source})" for label, _ in layout.curves if label in curves)
            name = None
            if curves:
                name = f"figure{layout.figure_id}-{dataset}.png"
                plot_figure(layout, dataset, curves, Path(out_dir) / name)
            results.append(FigureResult(layout, dataset, name, drawn, missing))
    return results
