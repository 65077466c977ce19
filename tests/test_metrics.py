"""Metrics: hand-computed cases, the random ranker's analytic Recall@5, and ranx cross-checks.

ranx's numba kernels compile on first use (about 60 s once, then cached on disk);
the cross-checks use fixed-width IDs (``q0000``/``i0000``) so they never recompile.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from baselines.reference import RandomRanker
from flexbench.harness import evaluate
from flexbench.metrics import (
    METRIC_NAMES,
    batch_arrays,
    compute_metrics,
    dcg_at,
    ideal_order,
    mrr_at,
    ndcg_at,
    precision_at,
    recall_at,
    score_rankings,
)
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext
from flexbench.types import Candidate, Instance, NeedLabels, Split
from flexbench.vocabulary import get_need


def labels(gains: list[float], relevant: set[str] | None = None, iid: str = "q0000") -> NeedLabels:
    ids = tuple(f"i{j:04d}" for j in range(len(gains)))
    return NeedLabels(iid, "interest", ids, tuple(gains), frozenset(relevant or ()))


def test_metric_names_are_the_interface_constant() -> None:
    assert METRIC_NAMES == ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "precision@5", "mrr@5")


def test_dcg_and_ndcg_hand_computed() -> None:
    ranked = np.array([[3.0, 2.0, 3.0, 0.0, 1.0, 2.0]])
    # DCG@6 = 3 + 2/log2(3) + 3/2 + 0 + 1/log2(6) + 2/log2(7)
    expected_dcg = 3 + 2 / math.log2(3) + 3 / 2 + 1 / math.log2(6) + 2 / math.log2(7)
    assert dcg_at(ranked, 6)[0] == pytest.approx(expected_dcg, abs=1e-12)
    # ideal: 3, 3, 2, 2, 1, 0
    expected_idcg = 3 + 3 / math.log2(3) + 2 / 2 + 2 / math.log2(5) + 1 / math.log2(6)
    assert ndcg_at(ranked, ideal_order(ranked), 6)[0] == pytest.approx(expected_dcg / expected_idcg, abs=1e-12)
    # NDCG@2 = (3 + 2/log2 3) / (3 + 3/log2 3)
    assert ndcg_at(ranked, ideal_order(ranked), 2)[0] == pytest.approx(
        (3 + 2 / math.log2(3)) / (3 + 3 / math.log2(3)), abs=1e-12)


def test_float_gains_are_used_as_floats() -> None:
    ranked = np.array([[0.1, 1.73, 0.0]])
    ideal = ideal_order(ranked)
    assert ndcg_at(ranked, ideal, 3)[0] == pytest.approx(
        (0.1 + 1.73 / math.log2(3)) / (1.73 + 0.1 / math.log2(3)), abs=1e-12)


def test_all_zero_gains_give_zero_not_nan() -> None:
    zeros = np.zeros((1, 5))
    assert ndcg_at(zeros, zeros, 5)[0] == 0.0


def test_set_metrics_hand_computed() -> None:
    rel = np.array([[False, True, False, True, False, True], [False] * 6])
    n_rel = np.array([4.0, 0.0])
    assert recall_at(rel, n_rel, 5).tolist() == [0.5, 0.0]
    assert precision_at(rel, 5).tolist() == [0.4, 0.0]
    assert mrr_at(rel, 5).tolist() == [0.5, 0.0]
    late = np.array([[False] * 5 + [True]])
    assert mrr_at(late, 5)[0] == 0.0 and mrr_at(late, 6)[0] == pytest.approx(1 / 6)


def test_padding_with_zeros_changes_nothing() -> None:
    lab = labels([2.0, 0.0, 1.0, 0.5], {"i0000", "i0002"})
    ranking = ["i0003", "i0002", "i0001", "i0000"]
    narrow = compute_metrics(*batch_arrays([ranking], [lab]))
    wide = compute_metrics(*batch_arrays([ranking], [lab], width=40))
    for name in METRIC_NAMES:
        assert narrow[name][0] == wide[name][0]


def test_score_rankings_mixed_widths_and_foreign_ids() -> None:
    short = labels([1.0, 0.0, 0.0], {"i0000"}, "q0001")
    long = labels([0.0] * 29 + [1.0], {"i0029"}, "q0002")
    out = score_rankings([["i0000", "i0001", "i0002"], [f"i{j:04d}" for j in range(30)]], [short, long])
    assert out[0]["ndcg@30"] == 1.0 and out[0]["mrr@5"] == 1.0 and out[0]["precision@5"] == 0.2
    assert out[1]["ndcg@30"] == pytest.approx(1 / math.log2(31)) and out[1]["recall@5"] == 0.0
    foreign = score_rankings([["zzz", "i0000"]], [labels([1.0, 0.0], {"i0000"})])[0]
    assert foreign["mrr@5"] == 0.5 and foreign["ndcg@5"] == pytest.approx(1 / math.log2(3))


def test_random_ranker_recall_matches_analytic_expectation(mock_dataset: PreparedDataset) -> None:
    """RandomRanker through the harness: Recall@5 with |R| = 5 among K = 30 has mean 5/30."""
    n, k = 1000, 30
    ids = tuple(f"i{j:04d}" for j in range(k))
    instances = [Instance(f"q{b:04d}", "synthetic", Split.TEST, tuple(Candidate(i, i) for i in ids),
                          query="q") for b in range(n)]
    gains = tuple([1.0] * 5 + [0.0] * (k - 5))
    labs = {x.instance_id: NeedLabels(x.instance_id, "interest", ids, gains, frozenset(ids[:5]))
            for x in instances}
    ranker = RandomRanker(RankerContext(mock_dataset, seed=0))
    result = evaluate(ranker, instances, labs, get_need("interest"), batch_size=250)
    # hits ~ hypergeometric(30, 5, 5): variance 5 * (5/30) * (25/30) * (25/29); recall = hits / 5
    sd = math.sqrt(5 * (5 / 30) * (25 / 30) * (25 / 29)) / 5 / math.sqrt(n)
    assert abs(result.metrics["recall@5"] - 5 / 30) < 4 * sd
    assert result.metrics["precision@5"] == pytest.approx(result.metrics["recall@5"])  # |R| = k = 5


# ---- ranx: integer cross-check and the float-truncation pin ----------------------------------------

def _ranx_scores(gain_rows: list[list[int]], rankings: list[list[str]], metrics: list[str]) -> dict:
    ranx = pytest.importorskip("ranx")
    qrels = ranx.Qrels.from_dict({f"q{b:04d}": {f"i{j:04d}": int(g) for j, g in enumerate(row) if g > 0}
                                  for b, row in enumerate(gain_rows)})
    run = ranx.Run.from_dict({f"q{b:04d}": {item: float(len(r) - pos) for pos, item in enumerate(r)}
                              for b, r in enumerate(rankings)})
    return ranx.evaluate(qrels, run, metrics, return_mean=False, make_comparable=True)


def test_matches_ranx_on_integer_labels() -> None:
    rng = np.random.default_rng(3)
    n, k = 60, 30
    gains = rng.integers(0, 4, size=(n, k))
    gains[0] = 0  # an instance with nothing relevant
    gains[0, 7] = 1
    rankings = [[f"i{j:04d}" for j in rng.permutation(k)] for _ in range(n)]
    labs = [NeedLabels(f"q{b:04d}", "interest", tuple(f"i{j:04d}" for j in range(k)),
                       tuple(float(g) for g in gains[b]),
                       frozenset(f"i{j:04d}" for j in range(k) if gains[b, j] > 0)) for b in range(n)]
    ours = compute_metrics(*batch_arrays(rankings, labs))
    theirs = _ranx_scores(gains.tolist(), rankings, list(METRIC_NAMES))
    for name in METRIC_NAMES:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=0, atol=1e-9, err_msg=name)


def test_matches_pytrec_eval_on_integer_labels() -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(4)
    n, k = 40, 30
    gains = rng.integers(0, 4, size=(n, k))
    ids = tuple(f"i{j:04d}" for j in range(k))
    rankings = [[ids[j] for j in rng.permutation(k)] for _ in range(n)]
    labs = [NeedLabels(f"q{b:04d}", "interest", ids, tuple(map(float, gains[b])),
                       frozenset(i for i, g in zip(ids, gains[b], strict=True) if g > 0)) for b in range(n)]
    ours = compute_metrics(*batch_arrays(rankings, labs))
    names = {"ndcg@5": "ndcg_cut_5", "ndcg@10": "ndcg_cut_10", "ndcg@30": "ndcg_cut_30",
             "recall@5": "recall_5", "precision@5": "P_5"}
    evaluator = pytrec_eval.RelevanceEvaluator(
        {lab.instance_id: {i: int(g) for i, g in zip(ids, lab.gains, strict=True)} for lab in labs},
        set(names.values()))
    scores = evaluator.evaluate({lab.instance_id: {i: float(k - p) for p, i in enumerate(r)}
                                 for lab, r in zip(labs, rankings, strict=True)})
    for name, trec in names.items():
        theirs = [scores[lab.instance_id][trec] for lab in labs]
        np.testing.assert_allclose(ours[name], theirs, rtol=0, atol=1e-9, err_msg=name)


def test_ranx_truncates_float_labels_so_we_do_not_use_it_for_ndcg() -> None:
    ranx = pytest.importorskip("ranx")
    stored = ranx.Qrels.from_dict({"q0000": {"i0000": 1.73, "i0001": 0.1, "i0002": 2.0}}).to_dict()
    assert stored["q0000"]["i0000"] == 1 and stored["q0000"]["i0002"] == 2
    assert stored["q0000"].get("i0001", 0) == 0  # ESCI's S = 0.1 becomes 0
    # 4-item case: ranked labels 1.5, 0.1, 0.01, 2.0 (ideal 2.0, 1.5, 0.1, 0.01)
    gains = [1.5, 0.1, 0.01, 2.0]
    qrels = ranx.Qrels.from_dict({"q0000": {f"i{j:04d}": g for j, g in enumerate(gains)}})
    run = ranx.Run.from_dict({"q0000": {f"i{j:04d}": 4.0 - j for j in range(4)}})
    ranx_ndcg = float(ranx.evaluate(qrels, run, "ndcg@3"))
    ours = ndcg_at(np.array([gains]), ideal_order(np.array([gains])), 3)[0]
    assert ranx_ndcg == pytest.approx(0.380, abs=5e-4)
    assert ours == pytest.approx(0.523, abs=5e-4)
