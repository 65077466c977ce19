"""Fidelity of the synthetic samples (issue 23): real marginals within tolerance, difficulty checks, topic-match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flexbench.datasets.synthetic.reference_stats import REAL_STATS, RealStat, stats_of
from flexbench.fidelity import BY_CONSTRUCTION, Check, difficulty_checks, marginal_rows, switch_matrix
from flexbench.types import NeedLabels

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.mark.parametrize("dataset", ["kuairec", "ml-1m", "esci"])
def test_bundled_sample_reproduces_the_published_marginals(dataset: str) -> None:
    rows = marginal_rows(dataset, BUNDLED / dataset)
    assert rows and len(rows) == len(stats_of(dataset))
    failed = [(r.stat.name, r.stat.real, r.value) for r in rows if not r.passed]
    assert not failed, f"{dataset}: outside tolerance {failed}"


def test_the_real_table_names_a_source_and_a_tolerance_for_every_row() -> None:
    assert {s.dataset for s in REAL_STATS} == {"kuairec", "ml-1m", "esci"}
    for s in REAL_STATS:
        assert s.source and s.tolerance
    assert RealStat("x", "share", 50.7, "abs", tol=3).passes(53.7) and not RealStat("x", "s", 50.7, "abs", tol=3).passes(54)
    assert RealStat("x", "n", 44, "range", low=35, high=55).passes(35)
    with pytest.raises(ValueError):
        RealStat("x", "n", 1, "between")


def _labels(need: str, gains: list[list[float]]) -> list[NeedLabels]:
    ids = tuple("abcd")
    return [NeedLabels(f"i{k}", need, ids, tuple(g), frozenset(c for c, x in zip(ids, g, strict=True) if x > 0))
            for k, g in enumerate(gains)]


def test_switch_matrix_scores_each_oracle_on_the_other_labels() -> None:
    a = _labels("a", [[3, 2, 1, 0], [0, 1, 2, 3]])
    b = _labels("b", [[0, 1, 2, 3], [3, 2, 1, 0]])           # the reverse ranking
    m = switch_matrix({"a": a, "b": b, "a2": _labels("a2", [[6, 4, 2, 0], [0, 2, 4, 6]])})
    assert np.allclose(np.diag(m.to_numpy()), 1.0)
    assert m.loc["a", "a2"] == pytest.approx(1.0) and m.loc["a", "b"] < 0.7
    checks = difficulty_checks("mock", {"a": {"oracle": 1.0, "random": 0.5, "star": 0.9}}, m)
    status = {(c.what, c.need): c.status for c in checks}
    assert status[("random", "a")] == "ok" and status[("star", "a")] == "FAIL"
    assert status[("oracle-a", "a2")] == "FAIL" and status[("oracle-a", "b")] == "ok"


def test_known_failures_are_reported_as_known_not_hidden() -> None:
    (_dataset, what, need), why = next(iter(BY_CONSTRUCTION.items()))
    check = Check("reference", what, need, 0.99, 0.8, why)
    assert check.status == "known" and Check("reference", what, need, 0.5, 0.8, why).status == "ok"


def test_topic_match_reads_liked_topics_and_breaks_ties_by_popularity(mock_dataset) -> None:
    from baselines.topic_match import TopicMatchRanker, topic_shares
    from flexbench.ranker import RankerContext, build_ranker
    from flexbench.testing import check_ranker
    from flexbench.types import Candidate, HistoryItem, Instance, Split
    from flexbench.vocabulary import get_need

    x = Instance("i", "kuairec", Split.TEST, (Candidate("c1", "", ("1",)), Candidate("c2", "", ("2",)),
                                              Candidate("c3", "", ())),
                 history=(HistoryItem("h1", "", 2.0, topics=("1",)), HistoryItem("h2", "", 0.2, topics=("2",))))
    assert topic_shares(x, 1.0).tolist() == [1.0, 0.0, 0.0]           # only the liked item counts
    assert topic_shares(x, None).tolist() == [0.5, 0.5, 0.0]
    check_ranker(TopicMatchRanker, dataset=mock_dataset)
    ranker = build_ranker("topic-match", RankerContext(mock_dataset))
    (ranking,) = ranker.rank(mock_dataset.instances("test", limit=1), get_need("interest"))
    assert sorted(ranking.item_ids) == sorted(mock_dataset.instances("test", limit=1)[0].candidate_ids)


def test_medium_scale_is_registered_for_kuairec_only() -> None:
    from flexbench.datasets.synthetic import MEDIUM, SCALES
    from flexbench.datasets.synthetic.kuairec import SCALES as KUAIREC

    assert "medium" in SCALES and MEDIUM == ("kuairec",)
    medium = KUAIREC["medium"]
    assert medium.small_users >= 300 and medium.small_items * 0.1 - 3 >= 10   # >= 30 test users, >= 10 anchors each


@pytest.mark.slow
def test_medium_sample_has_30_test_users_and_300_instances(tmp_path: Path) -> None:
    from flexbench.datasets.prepare import PrepareConfig, prepare
    from flexbench.datasets.synthetic import writer

    raw = writer("kuairec")(tmp_path / "raw", "medium", 0)
    data = prepare(PrepareConfig("kuairec", encoder="hash"), raw.parents[1], tmp_path / "prepared",
                   cache=tmp_path / "emb")
    test = data.instances("test")
    assert len({x.user_id for x in test}) >= 30 and len(test) >= 300
    assert all(r.passed for r in marginal_rows("kuairec", raw.parents[1]))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["kuairec", "ml-1m", "esci"])
def test_difficulty_checks_pass_on_the_bundled_samples_with_minilm(dataset: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from flexbench.audit import audit_dataset, need_switch
    from flexbench.datasets.prepare import prepare_sample

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("FLEXBENCH_DATA", str(tmp_path))
    data = prepare_sample(dataset, tmp_path, cache=tmp_path / "emb")
    rows = audit_dataset(data)
    checks = difficulty_checks(dataset, {r.need: r.scores for r in rows}, need_switch(data))
    assert not [c for c in checks if c.status == "FAIL" and c.kind != "star-esci"]
    # STAR on ESCI: 0.656 measured, the 0.6 is not reached (docs/PROTOCOL.md section 6); pin the level
    assert all(c.value <= 0.7 for c in checks if c.kind == "star-esci")
    if dataset != "esci":
        interest = next(r for r in rows if r.need == "interest").scores
        assert interest["topic-match"] > interest["popularity"]
