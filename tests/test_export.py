"""Results out and back in: TREC run/qrels files, JSON Lines, per-instance metrics, ranx objects; pytrec_eval
agrees with our NDCG on integer-graded needs; a run exported to TREC and replayed by ``run-file`` scores the same."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from baselines.reference import RandomRanker
from baselines.run_file import RunFileRanker
from baselines.star import STARRanker
from flexbench.errors import FlexBenchError
from flexbench.export import (
    ExportPart,
    GradeRule,
    export_runs,
    grade_mapping,
    metrics_frame,
    read_qrels,
    read_trec_run,
    to_ranx,
)
from flexbench.harness import evaluate
from flexbench.metrics import METRIC_NAMES
from flexbench.mock import write_mock_dataset
from flexbench.prepared import PreparedDataset, write_prepared
from flexbench.ranker import RankerContext
from flexbench.results import ResultStore
from flexbench.types import Instance, NeedSpec, Ranking, RunKey
from flexbench.vocabulary import get_need


def _integer_mock(root: Path) -> PreparedDataset:
    """The mock with its interest gains turned into integer grades 0..6 (an integer-graded need)."""
    base = write_mock_dataset(root / "base")
    labels = pd.read_parquet(base.root / "labels.parquet")
    labels["gains"] = [[float(round(3 * g)) for g in gains] for gains in labels["gains"]]
    return write_prepared(root / "prepared" / "mock", dataset="mock", variant="sparse", needs=base.needs,
                          instances=pd.read_parquet(base.root / "instances.parquet"), items=base.items,
                          labels=labels, interactions=base.interactions(None),
                          embeddings=np.load(base.root / "item_embeddings.npy"), config=base.meta["config"])


class _Sloppy:
    """Emits a foreign ID, a duplicate and only half the candidates (the harness repairs it)."""

    name = "sloppy"

    def rank(self, instances: list[Instance], need: NeedSpec) -> list[Ranking]:
        out = []
        for x in instances:
            ids = list(x.candidate_ids[::-1][: x.k // 2])
            out.append(Ranking(x.instance_id, ("not-an-item", ids[0], *ids)))
        return out


@pytest.fixture()
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ResultStore, PreparedDataset, Path]:
    monkeypatch.setenv("FLEXBENCH_DATA", str(tmp_path))
    data = _integer_mock(tmp_path)
    store = ResultStore(tmp_path / "results")
    ctx = RankerContext(data)
    need = get_need("interest")
    for name, ranker in (("star", STARRanker(ctx)), ("random", RandomRanker(ctx)), ("sloppy", _Sloppy())):
        evaluate(ranker, data.instances("test"), data.labels("interest"), need, key=RunKey(name, "mock", "interest"),
                 store=store, provenance={"data_fingerprint": data.fingerprint}, config={"ranker": name})
    export_runs(store, store.load_runs(), tmp_path / "out")
    return store, data, tmp_path / "out"


def test_pytrec_eval_agrees_on_an_integer_graded_need(exported: tuple[ResultStore, PreparedDataset, Path]) -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    store, _, out = exported
    qrels = read_qrels(out / "mock.interest.test.qrels")
    head = (out / "mock.interest.test.qrels").read_text().splitlines()[:3]
    assert head[1] == "# grades: grade = gain (every gain of this need is a whole number)"
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.5", "ndcg_cut.10", "ndcg_cut.30"})
    for ranker in ("star", "random", "sloppy"):
        rows = read_trec_run(out / f"mock.interest.test.{ranker}.run")
        theirs = evaluator.evaluate({q: {d: s for d, _, s in r} for q, r in rows.items()})
        ours = {r.instance_id: r.metrics for r in store.load_records(RunKey(ranker, "mock", "interest"))}
        assert set(theirs) == set(ours)
        for iid, m in ours.items():
            for k in (5, 10, 30):
                assert theirs[iid][f"ndcg_cut_{k}"] == pytest.approx(m[f"ndcg@{k}"], abs=1e-12), (ranker, iid, k)


@pytest.mark.slow  # ranx compiles its numba kernels on first use (over a minute on 2 busy cores)
def test_ranx_objects_agree(exported: tuple[ResultStore, PreparedDataset, Path]) -> None:
    ranx = pytest.importorskip("ranx")
    store, data, _ = exported
    key = RunKey("star", "mock", "interest")
    run, qrels = to_ranx(store, key)
    assert set(run.to_dict()) == {x.instance_id for x in data.instances("test")} and run.name == "star"
    assert ranx.evaluate(qrels, run, "ndcg@10") == pytest.approx(store.load_run(key).metrics["ndcg@10"], abs=1e-12)


def test_metric_frame_and_jsonl(exported: tuple[ResultStore, PreparedDataset, Path]) -> None:
    store, _, out = exported
    key = RunKey("star", "mock", "interest")
    frame = metrics_frame(store)
    assert len(frame) == 3 * 12 and set(frame["ranker"]) == {"star", "random", "sloppy"}
    star = frame[frame["ranker"] == "star"]
    assert star["ndcg@5"].mean() == pytest.approx(store.load_run(key).metrics["ndcg@5"])
    assert pd.read_parquet(out / "metrics.parquet").equals(frame)
    sloppy = frame[frame["ranker"] == "sloppy"]
    assert (sloppy["n_invalid"] == 1).all() and (sloppy["n_duplicate"] == 1).all() and (sloppy["n_padded"] == 15).all()
    lines = [json.loads(line) for line in (out / "mock.interest.test.sloppy.jsonl").read_text().splitlines()]
    assert lines[0]["key"] == {"ranker": "sloppy", "dataset": "mock", "need": "interest", "split": "test"}
    assert lines[0]["output_ids"][0] == "not-an-item" and len(lines[0]["repaired_ids"]) == 30


def test_replaying_an_exported_run_gives_identical_metrics(exported: tuple[ResultStore, PreparedDataset, Path],
                                                           tmp_path: Path) -> None:
    store, data, out = exported
    for ranker in ("star", "sloppy"):
        replay = RunFileRanker(RankerContext(data, options={"path": str(out / f"mock.interest.test.{ranker}.run")}))
        key = RunKey(f"{ranker}-replayed", "mock", "interest")
        again = evaluate(replay, data.instances("test"), data.labels("interest"), get_need("interest"), key=key,
                         store=store, provenance={"data_fingerprint": data.fingerprint}, config={"ranker": "run-file"})
        original = store.load_run(RunKey(ranker, "mock", "interest"))
        assert dict(again.metrics) == dict(original.metrics)  # exact: the same ranking is scored
        per_instance = {r.instance_id: r.metrics for r in store.load_records(RunKey(ranker, "mock", "interest"))}
        assert {r.instance_id: r.metrics for r in store.load_records(key)} == per_instance
        assert again.rates["invalid_rate"] == 0.0  # the scored (repaired) ranking is what was exported


def test_run_file_repairs_like_any_ranker(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    xs = mock_dataset.instances("test")[:3]
    a, b = xs[0], xs[1]
    path = tmp_path / "system.run"
    path.write_text("# produced elsewhere\n"
                    f"{a.instance_id} Q0 {a.candidate_ids[2]} 1 9.5 sys\n"
                    f"{a.instance_id} Q0 ghost-item 2 9.0 sys\n"
                    f"{a.instance_id} Q0 {a.candidate_ids[2]} 3 8.0 sys\n"
                    f"{a.instance_id} Q0 {a.candidate_ids[0]} 4 9.9 sys\n"
                    f"{b.instance_id} Q0 {b.candidate_ids[1]} 1 1.0 sys\n"
                    "no-such-query Q0 x 1 1.0 sys\n")
    ranker = RunFileRanker(RankerContext(mock_dataset, options={"path": str(path)}))
    out = ranker.rank(xs, get_need("interest"))
    assert out[0].item_ids == (a.candidate_ids[0], a.candidate_ids[2], "ghost-item", a.candidate_ids[2])
    assert out[2].item_ids == () and ranker.n_unmatched == 1
    result = evaluate(ranker, xs, mock_dataset.labels("interest"), get_need("interest"))
    assert result.rates["invalid_rate"] == pytest.approx(1 / 5) and result.rates["duplicate_rate"] == pytest.approx(1 / 5)
    assert result.rates["pad_rate"] == pytest.approx((28 + 29 + 30) / 90)
    prov = ranker.provenance("interest")
    assert prov["run_tags"] == ["sys"] and prov["run_file_unmatched_queries"] == 1 and len(prov["run_file_sha256"]) == 64


def test_malformed_run_files_are_one_line_errors(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    from flexbench.ranker import RankerUnavailable

    with pytest.raises(RankerUnavailable, match="--set path=FILE"):
        RunFileRanker(RankerContext(mock_dataset))
    bad = tmp_path / "bad.run"
    bad.write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 two 0.4 tag\n")
    with pytest.raises(FlexBenchError, match=r"bad.run:2: expected 'qid Q0 docid rank score tag'"):
        read_trec_run(bad)
    with pytest.raises(FlexBenchError, match="does not exist"):
        read_trec_run(tmp_path / "missing.run")


def test_grade_mappings() -> None:
    esci = grade_mapping("esci", [1.0, 0.1, 0.01, 0.0])
    assert esci.rule is GradeRule.ESCI and [esci.grade(g) for g in (1.0, 0.1, 0.01, 0.0)] == [3, 2, 1, 0]
    assert "3/2/1/0" in esci.describe()
    ml = grade_mapping("interest", [0.0, 1.0, 3.0, 31.0])
    assert ml.rule is GradeRule.INTEGER and ml.grade(31.0) == 31
    scaled = grade_mapping("novelty", [0.0, 0.4567, 1.5])
    assert scaled.rule is GradeRule.SCALED and scaled.grade(0.4567) == 46 and scaled.grade(1.5) == 150
    with pytest.raises(FlexBenchError, match="no qrels grade"):
        scaled.grade(-0.1)
    with pytest.raises(FlexBenchError, match="not one of the ESCI gains"):
        esci.grade(0.5)
    assert math.isclose(grade_mapping("novelty", [0.5], scale=1000).grade(0.4567), 457)


def test_export_cli_and_no_header(exported: tuple[ResultStore, PreparedDataset, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flexbench.cli import app

    store, _, _ = exported
    runner = CliRunner()
    result = runner.invoke(app, ["export", "star", "--results", str(store.root), "--out", str(tmp_path / "cli"),
                                 "--what", "run,qrels,metrics", "--metrics-format", "csv", "--no-header"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert names == ["metrics.csv", "mock.interest.test.qrels", "mock.interest.test.star.run"]
    assert not (tmp_path / "cli" / "mock.interest.test.qrels").read_text().startswith("#")
    assert len(pd.read_csv(tmp_path / "cli" / "metrics.csv")) == 12
    assert set(pd.read_csv(tmp_path / "cli" / "metrics.csv").columns) >= set(METRIC_NAMES)
    bad = runner.invoke(app, ["export", "--results", str(store.root), "--what", "runs"])
    assert bad.exit_code != 0 and "--what takes a comma list of run, qrels, jsonl, metrics" in str(bad.exception)
    none = runner.invoke(app, ["export", "nothing", "--results", str(store.root)])
    assert none.exit_code != 0 and "no stored run" in str(none.exception)
    assert ExportPart("qrels") is ExportPart.QRELS
