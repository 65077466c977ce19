"""Figure 2 (paper Section 4.5, "FlexRec is a Universal Multi-Need Ranker"): one policy for every need.

Per dataset of :data:`~flexbench.tables.layout.JOINT` and per test need of the
dataset (``flexbench.vocabulary.DATASET_NEEDS``), three bars, each the stored
test run ``RunKey(label, dataset, need, "test")`` of:

* the base model, label ``zero-shot`` (no training);
* the single-need policy, label ``flexrec``, whose provenance records
  ``train_need`` = the test need (``flexbench train flexrec --need N``);
* the joint policy, label ``flexrec-joint``, recording ``train_need == "all"``
  (``flexbench train flexrec --needs all``, evaluated with
  ``--set train_need=all --set label=flexrec-joint``).

A bar is drawn only from a complete run with the right train need (the rules of
:func:`flexbench.tables.cells.run_status`); any other bar is listed as missing
with the commands that produce it, never estimated. The PNG of a dataset is
written when at least one of its bars is stored, without a timestamp or version
tag, so re-plotting the same store gives identical bytes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from flexbench.tables.cells import TEST_SPLIT, CellStatus, run_status
from flexbench.tables.layout import DATASET_TITLES, JOINT, JOINT_TRAIN_NEED, METRIC_TITLES, JointFigureLayout
from flexbench.tables.store import ResultSource
from flexbench.types import RunKey, RunResult


class Series(StrEnum):
    """The bars of each test need, in drawing order."""

    BASE = "zero-shot"
    SINGLE = "single-need"
    JOINT = "joint"


LEGENDS: dict[Series, str] = {Series.BASE: "Zero-shot (base model)",
                              Series.SINGLE: "FlexRec, trained on the test need",
                              Series.JOINT: "FlexRec, trained jointly on all needs"}


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: the run it reads, whether it is drawn, its values (empty unless drawn), the commands."""

    series: Series
    need: str
    key: RunKey
    status: CellStatus
    values: Mapping[str, float]
    note: str
    commands: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JointPanel:
    """Figure 2 on one dataset (``path`` relative to the output directory, None when nothing is stored)."""

    layout: JointFigureLayout
    dataset: str
    needs: tuple[str, ...]
    bars: tuple[Bar, ...]
    runs: tuple[RunResult, ...]
    path: str | None = None

    def bar(self, series: Series, need: str) -> Bar:
        """The bar of ``series`` on test need ``need``."""
        return next(b for b in self.bars if b.series is series and b.need == need)

    @property
    def missing(self) -> tuple[Bar, ...]:
        """Bars that are not drawn, in drawing order."""
        return tuple(b for b in self.bars if b.status is not CellStatus.OK)


def bar_plan(layout: JointFigureLayout, series: Series, dataset: str, need: str) -> tuple[str, str | None,
                                                                                           tuple[str, ...]]:
    """``(label, expected train need, commands)`` of one bar."""
    if series is Series.BASE:
        return layout.base, None, (f"flexbench eval {layout.base} --dataset {dataset} --need {need}",)
    m = layout.method
    if series is Series.SINGLE:
        return m, need, (f"flexbench train {m} --dataset {dataset} --need {need}",
                         f"flexbench eval {m} --dataset {dataset} --need {need} --set train_need={need}")
    joint_eval = (f"flexbench eval {m} --dataset {dataset} --need {need} --set train_need={JOINT_TRAIN_NEED} "
                  f"--set label={layout.joint_label}")
    return layout.joint_label, JOINT_TRAIN_NEED, (f"flexbench train {m} --dataset {dataset} --needs all", joint_eval)


def resolve_panel(layout: JointFigureLayout, dataset: str, store: ResultSource) -> JointPanel:
    """Every bar of ``dataset`` from ``store`` (nothing is drawn here)."""
    from flexbench.vocabulary import DATASET_NEEDS

    needs = DATASET_NEEDS[dataset]
    bars, runs = [], []
    for need in needs:
        for series in Series:
            label, expected, commands = bar_plan(layout, series, dataset, need)
            key = RunKey(label, dataset, need, TEST_SPLIT)
            run = store.load_run(key)
            status, note = run_status(run, expected)
            absent = [m for m in layout.metrics if run is not None and m not in run.metrics]
            if status is CellStatus.OK and absent:
                status, note = CellStatus.MISSING, f"run has no {', '.join(absent)}"
            values = {m: float(run.metrics[m]) for m in layout.metrics} if status is CellStatus.OK else {}
            if status is CellStatus.OK:
                runs.append(run)
            bars.append(Bar(series, need, key, status, values, note, commands))
    ordered = tuple(sorted(runs, key=lambda r: r.key.path_parts()))
    return JointPanel(layout, dataset, needs, tuple(bars), ordered)


def plot_panel(panel: JointPanel, out: Path) -> None:
    """Grouped bars to PNG ``out``: one subplot per metric, one group per test need, one bar per series."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    from flexbench.vocabulary import get_need

    metrics = panel.layout.metrics
    fig = Figure(figsize=(4.6 * len(metrics), 3.6), dpi=100)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    width = 0.8 / len(Series)
    for ax, metric in zip(axes, metrics, strict=True):
        for index, series in enumerate(Series):  # fixed colour and offset per series, drawn or not
            xs = [i + (index - (len(Series) - 1) / 2) * width for i in range(len(panel.needs))]
            bars = [panel.bar(series, need) for need in panel.needs]
            drawn = [(x, b.values[metric]) for x, b in zip(xs, bars, strict=True) if b.status is CellStatus.OK]
            if drawn:
                rects = ax.bar([x for x, _ in drawn], [v for _, v in drawn], width, label=LEGENDS[series],
                               color=f"C{index}")
                ax.bar_label(rects, fmt="%.3f", fontsize=6, padding=1)
        ax.set_xticks(range(len(panel.needs)), [get_need(n).title for n in panel.needs], fontsize=8)
        ax.set_ylabel(f"test {METRIC_TITLES[metric]}")
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{panel.layout.title} ({DATASET_TITLES.get(panel.dataset, panel.dataset)})", fontsize=9)
    missing = sorted({b.series for b in panel.missing}, key=list(Series).index)
    fig.tight_layout(rect=(0, 0.07 if missing else 0, 1, 1))
    if missing:
        text = "; ".join(f"{LEGENDS[s]}: " + ", ".join(b.need for b in panel.missing if b.series is s)
                         for s in missing)
        fig.text(0.01, 0.01, f"missing (no stored run): {text}", fontsize=7, color="#a00")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, format="png", metadata={"Software": None})  # no version tag: reproducible bytes
    os.replace(tmp, out)


def write_joint_figures(store: ResultSource, out_dir: Path,
                        layout: JointFigureLayout = JOINT) -> list[JointPanel]:
    """Resolve Figure 2 on every dataset of ``layout`` and plot those with a stored bar."""
    panels = []
    for dataset in layout.datasets:
        panel = resolve_panel(layout, dataset, store)
        if panel.runs:
            name = f"figure{layout.figure_id}-{dataset}.png"
            plot_panel(panel, Path(out_dir) / name)
            panel = dataclasses.replace(panel, path=name)
        panels.append(panel)
    return panels
