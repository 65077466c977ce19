"""Figures 3 and 4 from training logs: drawn curves, listed missing ones, nothing invented."""

from __future__ import annotations

import json
from pathlib import Path

from flexbench.tables.figures import find_training_logs, write_figures
from flexbench.tables.layout import FIGURES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_logs_keep_validation_points_only(fixed_checkpoints: Path) -> None:
    logs = {g.label: g for g in find_training_logs(fixed_checkpoints)}
    assert set(logs) == {"flexrec", "rec-r1"}
    assert logs["flexrec"].steps == (0, 2, 4, 6, 8, 10)  # the train-split line at step 3 is ignored
    assert logs["flexrec"].values["ndcg@5"][-1] == 0.3 + 0.02 * 10


def test_figures_draw_present_curves_and_list_missing(fixed_checkpoints: Path, tmp_path: Path) -> None:
    fig3, fig4 = write_figures(fixed_checkpoints, tmp_path)
    assert fig3.missing == ("flexrec-noncausal",) and len(fig3.drawn) == 2
    assert fig4.missing == ("flexrec-userknn", "flexrec-itemknn", "flexrec-rawcritic")
    assert (tmp_path / fig3.path).read_bytes().startswith(PNG_MAGIC)


def test_no_logs_means_no_image(tmp_path: Path) -> None:
    run = tmp_path / "ckpt" / "flexrec"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"label": "flexrec", "dataset": "kuairec", "needs": ["interest"]}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train", "ndcg@5": 0.5}) + "\n")
    results = write_figures(tmp_path / "ckpt", tmp_path / "out")
    assert [r.path for r in results] == [None, None]
    assert [len(r.missing) for r in results] == [len(f.curves) for f in FIGURES]
    assert not (tmp_path / "out").exists()
