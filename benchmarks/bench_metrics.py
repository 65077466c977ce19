"""Time FlexBench's metrics against ranx and pytrec_eval on the same data, in the same run.

Data: 1,000 instances x 30 candidates, integer gains 0-3 (so every library scores
the same thing), relevant set = gain > 0, a random permutation as the run.
Metrics: NDCG@5/@10/@30, Recall@5, Precision@5, MRR@5 (pytrec_eval has no
MRR@k: it computes ``recip_rank`` over the whole list, timed but not compared).

Timings are the median of ``--repeats`` runs. ranx compiles its numba kernels
on first use: it is warmed up first on the same data and that compile time is
printed separately and excluded. Each library's time includes building its own
input structures from the ranked lists (our padded arrays; ranx Qrels/Run;
pytrec_eval dicts), since that is what an evaluation pays.

    .venv/bin/python benchmarks/bench_metrics.py [--instances 1000] [--k 30] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from flexbench.metrics import METRIC_NAMES, batch_arrays, compute_metrics
from flexbench.types import NeedLabels

RANX_NAMES = list(METRIC_NAMES)
TREC_NAMES = {"ndcg@5": "ndcg_cut_5", "ndcg@10": "ndcg_cut_10", "ndcg@30": "ndcg_cut_30",
              "recall@5": "recall_5", "precision@5": "P_5"}


def make_data(n: int, k: int, seed: int = 0) -> tuple[list[NeedLabels], list[list[str]]]:
    """Integer-gain labels and one random ranking per instance (fixed-width IDs)."""
    rng = np.random.default_rng(seed)
    ids = tuple(f"i{j:04d}" for j in range(k))
    labels, rankings = [], []
    for b in range(n):
        gains = rng.integers(0, 4, size=k)
        labels.append(NeedLabels(f"q{b:05d}", "bench", ids, tuple(float(g) for g in gains),
                                 frozenset(i for i, g in zip(ids, gains, strict=True) if g > 0)))
        rankings.append([ids[j] for j in rng.permutation(k)])
    return labels, rankings


def ours(labels: list[NeedLabels], rankings: list[list[str]]) -> dict[str, np.ndarray]:
    return compute_metrics(*batch_arrays(rankings, labels))


def run_ranx(labels: list[NeedLabels], rankings: list[list[str]]) -> dict[str, np.ndarray]:
    from ranx import Qrels, Run, evaluate

    qrels = Qrels.from_dict({lab.instance_id: {i: int(g) for i, g in zip(lab.candidate_ids, lab.gains,
                                                                         strict=True) if g > 0}
                             for lab in labels})
    run = Run.from_dict({lab.instance_id: {item: float(len(r) - p) for p, item in enumerate(r)}
                         for lab, r in zip(labels, rankings, strict=True)})
    return evaluate(qrels, run, RANX_NAMES, return_mean=False, make_comparable=True)


def run_trec(labels: list[NeedLabels], rankings: list[list[str]]) -> dict[str, np.ndarray]:
    import pytrec_eval

    qrels = {lab.instance_id: {i: int(g) for i, g in zip(lab.candidate_ids, lab.gains, strict=True)}
             for lab in labels}
    run = {lab.instance_id: {item: float(len(r) - p) for p, item in enumerate(r)}
           for lab, r in zip(labels, rankings, strict=True)}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {*TREC_NAMES.values(), "recip_rank"})
    scores = evaluator.evaluate(run)
    order = [lab.instance_id for lab in labels]
    return {ours_name: np.array([scores[q][trec] for q in order]) for ours_name, trec in TREC_NAMES.items()}


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(np.asarray(a[m]) - np.asarray(b[m])))) for m in b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    labels, rankings = make_data(args.instances, args.k)
    print(f"{args.instances} instances x {args.k} candidates, metrics: {', '.join(METRIC_NAMES)}; "
          f"median of {args.repeats} runs")
    t_ours, ref = timed(lambda: ours(labels, rankings), args.repeats)
    arrays = batch_arrays(rankings, labels)
    t_kernel, _ = timed(lambda: compute_metrics(*arrays), args.repeats)
    rows = [("flexbench.metrics (build arrays+compute)", t_ours, "-"),
            ("flexbench.metrics (compute only)", t_kernel, "0")]
    try:
        import ranx  # noqa: F401
    except ImportError:
        print("ranx: not installed")
    else:
        start = time.perf_counter()
        run_ranx(labels[:2], rankings[:2])  # numba compile (or load from its on-disk cache)
        print(f"ranx warm-up (numba compile or cache load, excluded): {time.perf_counter() - start:.1f} s")
        t, out = timed(lambda: run_ranx(labels, rankings), args.repeats)
        rows.append(("ranx 0.3.21 (Qrels+Run+evaluate)", t, f"{max_diff(ref, out):.1e}"))
    try:
        import pytrec_eval  # noqa: F401
    except ImportError:
        print("pytrec_eval: not installed (pip install pytrec-eval-terrier)")
    else:
        t, out = timed(lambda: run_trec(labels, rankings), args.repeats)
        rows.append(("pytrec_eval (dicts+evaluate, no MRR@5)", t, f"{max_diff(ref, out):.1e}"))
    print(f"{'implementation':42s} {'time':>10s} {'max |diff| vs ours':>20s}")
    for name, t, diff in rows:
        print(f"{name:42s} {1000 * t:8.2f} ms {diff:>20s}")


if __name__ == "__main__":
    main()
