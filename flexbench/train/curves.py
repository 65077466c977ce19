"""The training log ``<out>/metrics.jsonl`` and its plot ``<out>/curve.png``, and the progress bar.

One JSON object per line: ``{"step", "split": "train", "phase", "reward_mean", "loss", "kl", ...}``
after each step and ``{"step", "split": "valid", "need", "ndcg@5", "ndcg@10", "reward_mean", ...}``
after each validation (docs/INTERFACES.md). The plot shows validation NDCG@10 (solid) and
NDCG@5 (dashed) against the step, one colour per need — the paper's Figures 3 and 4 — and
beside it the training panels (:data:`TRAIN_PANELS`: reward, loss, KL, entropy, uncertainty weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "curve.png"


def append_line(path: Path, line: dict[str, Any]) -> None:
    """Append one JSON line (flushed on close, so an interruption loses at most this line)."""
    with Path(path).open("a") as fh:
        fh.write(json.dumps(line) + "\n")


def truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint being resumed (they will be written again)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(f"{ln}\n" for ln in lines))


def has_valid_line(path: Path, step: int) -> bool:
    if not path.exists():
        return False
    return any(json.loads(ln).get("split") == "valid" and json.loads(ln)["step"] == step
               for ln in path.read_text().splitlines() if ln.strip())


def read_metrics(path: Path, split: str | None = None) -> list[dict[str, Any]]:
    """Lines of a ``metrics.jsonl`` (of ``split`` only, when given)."""
    if not Path(path).exists():
        return []
    rows = [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
    return [r for r in rows if split is None or r.get("split") == split]


TRAIN_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rollout reward (train)", ("reward_mean",)),
    ("loss (SFT: cross-entropy)", ("loss",)),
    ("KL to the reference (k3)", ("kl",)),
    ("entropy", ("entropy",)),
    ("uncertainty weights", ("weight_std", "weight_min", "weight_max")),
)
"""Panels after the validation one: title and the train-line keys drawn in it (those logged)."""


def curve_panels(train: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The :data:`TRAIN_PANELS` that ``train`` lines fill: ``(title, logged keys)``, empty panels left out."""
    panels = [(title, [k for k in keys if any(isinstance(r.get(k), (int, float)) for r in train)])
              for title, keys in TRAIN_PANELS]
    return [(t, ks) for t, ks in panels if ks]


def plot_curve(metrics_path: Path, png_path: Path) -> None:
    """Validation NDCG@5/@10 against the step, one line per need, then the training panels (matplotlib Agg).

    Panel 1 is the paper's Figures 3/4 (validation NDCG@10 solid, @5 dashed).
    The others draw, per step, the keys of :data:`TRAIN_PANELS` that the run
    logged: the rollouts' mean sequence reward (RL steps), the loss (SFT steps:
    cross-entropy), the k3 KL to the reference, the policy entropy, and the
    uncertainty weights' within-group standard deviation with their min and
    max. A panel with nothing logged is left out (TALLRec logs only the loss).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path, "valid")
    if not rows:
        return
    train = read_metrics(metrics_path, "train")
    panels = curve_panels(train)
    cols = min(3, 1 + len(panels))
    nrows = -(-(1 + len(panels)) // cols)
    fig, grid = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.4 * nrows), squeeze=False)
    axes = list(grid.flat)
    for spare in axes[1 + len(panels):]:
        spare.set_visible(False)
    ax = axes[0]
    for need in sorted({r.get("need", "") for r in rows}):
        pts = sorted((r["step"], r["ndcg@10"], r["ndcg@5"]) for r in rows if r.get("need", "") == need)
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{need} N@10")
        ax.plot([p[0] for p in pts], [p[2] for p in pts], linestyle="--", color=line.get_color(),
                label=f"{need} N@5")
    ax.set_title("validation NDCG", fontsize=9)
    for axis, (title, keys) in zip(axes[1:], panels, strict=False):
        for key in keys:
            pts = [(r["step"], r[key]) for r in train if isinstance(r.get(key), (int, float))]
            axis.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=key)
        axis.set_title(title, fontsize=9)
    for axis in axes[:1 + len(panels)]:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def progress_bar(total: int, done: int, enabled: bool) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def bar() -> Any:
        if not enabled:
            yield lambda info: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        with RichProgress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TextColumn("{task.fields[info]}")) as prog:
            task = prog.add_task("train", total=total, completed=done, info="")

            def advance(info: dict[str, Any]) -> None:
                shown = {k: info[k] for k in ("phase", "reward_mean", "loss", "kl") if k in info}
                text = " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items())
                prog.update(task, advance=1, info=text)

            yield advance

    return bar()
