"""What each training-gain signal rewards, measured against the need's labels on the training instances.

For an engagement need (``interest``) the training reward sees, per candidate,
the observed value where the user's training interactions hold the item and an
imputation elsewhere (:mod:`flexbench.train.signal.gains`). On ML-1M the labels
(SPEC 3) give an unrated candidate gain 0, so a signal that imputes positive
gains for unrated fillers rewards lists the evaluation scores as wrong. Per
signal, over the first ``--limit`` training instances (issue 14, item 6):

* ``NDCG@5 of its ideal list``   the list that maximises the training reward
  (candidates by training gain, ties by candidate ID), scored on the labels:
  1.0 when the reward's optimum is the evaluation's optimum;
* ``fillers in top 5``           mean number of label-0 candidates in that list;
* ``Spearman``                   mean rank correlation of training gains and labels per instance;
* ``filler gain / labelled gain`` mean training gain of label-0 candidates over that of labelled ones.

The reference row ``labels`` is the labels themselves (1.0, 0 fillers).

    FLEXBENCH_DATA=/work/ml-data .venv/bin/python benchmarks/gain_fidelity.py --dataset ml-1m --need interest
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SIGNALS = ("labels", "observed", "observed+critic", "user-knn", "item-knn")


def ideal_list(gains: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    """Candidate indices by training gain descending, ties by candidate ID (deterministic)."""
    return np.lexsort((np.array(ids), -gains))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho with average ranks; None where either side is constant."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def signal_stats(signal: str, pairs: Sequence[tuple[np.ndarray, np.ndarray, Sequence[str]]]) -> dict[str, Any]:
    """Figures of one signal from ``(training gains, labels, candidate ids)`` per instance."""
    from flexbench.metrics import ideal_order, ndcg_at

    ndcgs, fillers, rhos, ratio_num, ratio_den = [], [], [], [], []
    for gains, labels, ids in pairs:
        order = ideal_list(gains, ids)
        ndcgs.append(float(ndcg_at(labels[order][None], ideal_order(labels[None]), 5)[0]))
        fillers.append(int((labels[order[:5]] == 0).sum()))
        rho = spearman(gains, labels)
        if rho is not None:
            rhos.append(rho)
        zero, pos = labels == 0, labels > 0
        if zero.any() and pos.any():
            ratio_num.append(float(gains[zero].mean()))
            ratio_den.append(float(gains[pos].mean()))
    den = statistics.fmean(ratio_den) if ratio_den else 0.0
    return {"signal": signal, "n": len(pairs), "ndcg@5": statistics.fmean(ndcgs),
            "fillers_top5": statistics.fmean(fillers), "spearman": statistics.fmean(rhos) if rhos else None,
            "filler_over_labelled": statistics.fmean(ratio_num) / den if den else None}


def measure(dataset_name: str, need: str, signals: Sequence[str], limit: int, critic: Path | None) -> list[dict[str, Any]]:
    """Per-signal figures on the first ``limit`` training instances of ``dataset_name``."""
    from flexbench.catalog import open_dataset
    from flexbench.train.signal.gains import make_gain_provider

    dataset = open_dataset(dataset_name)
    instances = dataset.instances("train", limit=limit)
    labels = dataset.labels(need, "train")
    rows = []
    for signal in signals:
        provider = make_gain_provider(dataset, need, signal, critic)
        pairs = []
        for x in instances:
            gains, _ = provider.candidate_gains(x, need)
            pairs.append((np.asarray(gains, float), np.asarray(labels[x.instance_id].gains, float), x.candidate_ids))
        rows.append(signal_stats(signal, pairs))
    return rows


def markdown(rows: Sequence[dict[str, Any]], dataset: str, need: str) -> str:
    """The figures as a Markdown table."""
    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    out = [f"Training-gain signals against the {need} labels, {dataset} training instances (n = {rows[0]['n']})\n",
           "| signal | NDCG@5 of its ideal list | fillers in top 5 | Spearman | filler gain / labelled gain |",
           "|---|---:|---:|---:|---:|"]
    out += [f"| {r['signal']} | {f(r['ndcg@5'])} | {r['fillers_top5']:.2f} | {f(r['spearman'])} | "
            f"{f(r['filler_over_labelled'])} |" for r in rows]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--need", default="interest")
    p.add_argument("--signals", default=",".join(DEFAULT_SIGNALS), type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--critic", type=Path, help="critic checkpoint (default: the dataset's trained critic)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = measure(args.dataset, args.need, args.signals, args.limit, args.critic)
    print(markdown(rows, args.dataset, args.need))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
