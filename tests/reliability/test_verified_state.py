"""Tampered or broken state is a one-line error naming the file (issue 16, items 3 and 5), never a number.

Prepared data: every file is checked against the size and hash recorded at
prepare time. Results: an aggregate must be well formed and agree with its
per-instance records; one bad file is reported and skipped by the boards and
``eval --all`` and does not stop anything else.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from flexbench.catalog import open_dataset
from flexbench.datasets.prepare import PrepareConfig, prepare
from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset
from flexbench.results import ResultStore
from flexbench.types import RunKey

REPO = Path(__file__).resolve().parents[2]
KEY = RunKey("random", "mock", "interest", "test")


@pytest.fixture()
def kuairec(tmp_path: Path) -> PreparedDataset:
    """The KuaiRec sample (with its organic log), hash encoder, few instances."""
    cfg = PrepareConfig("kuairec", encoder="hash", n_train=40, n_valid=10, n_test=10)
    return prepare(cfg, REPO / "data" / "sample" / "kuairec", tmp_path / "prepared", cache=tmp_path / "emb",
                   console=Console(file=io.StringIO()))


def _rewrite_labels_zeroed(root: Path) -> None:
    frame = pd.read_parquet(root / "labels.parquet")
    frame["gains"] = [[0.0] * len(g) for g in frame["gains"]]
    frame.to_parquet(root / "labels.parquet", index=False)


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("tamper", "match"), [
    (lambda r: (r / "organic.parquet").unlink(), r"organic.parquet: missing \(meta.json records it\)"),
    (lambda r: (r / "items.parquet").unlink(), r"items.parquet: missing"),
    (_rewrite_labels_zeroed, r"labels.parquet: \d+ bytes, meta.json records \d+"),
    (lambda r: (r / "meta.json").write_text('{"schema_version": 1, "dat'), r"meta.json: unreadable"),
    (lambda r: (r / "meta.json").write_text("[]"), r"meta.json: a JSON list, expected an object"),
])
def test_tampered_prepared_files_are_refused_on_open(kuairec: PreparedDataset, tamper, match: str) -> None:
    tamper(kuairec.root)
    with pytest.raises(FlexBenchError, match=match) as err:
        PreparedDataset(kuairec.root)
    command = "flexbench data prepare kuairec" + ("" if "meta.json" in match else " --raw-dir")
    assert "\n" not in str(err.value) and command in str(err.value)


def test_same_size_edit_is_caught_when_the_file_is_read(kuairec: PreparedDataset) -> None:
    opened = PreparedDataset(kuairec.root)
    _flip_last_byte(kuairec.root / "labels.parquet")
    with pytest.raises(FlexBenchError, match=r"labels.parquet: content does not match the hash"):
        opened.labels("interest")
    assert PreparedDataset(kuairec.root).instances("test")  # the other files still read


def test_reprepare_while_in_use_is_an_error_not_mixed_data(kuairec: PreparedDataset, tmp_path: Path) -> None:
    opened = PreparedDataset(kuairec.root)
    assert opened.instances("test")
    prepare(PrepareConfig("kuairec", encoder="hash", n_train=40, n_valid=10, n_test=10, seed=1),
            REPO / "data" / "sample" / "kuairec", kuairec.root.parent, cache=tmp_path / "emb",
            console=Console(file=io.StringIO()))
    with pytest.raises(FlexBenchError, match="re-prepared while in use"):
        opened.labels("interest")


def test_older_meta_without_hashes_has_its_fingerprint_recomputed(kuairec: PreparedDataset) -> None:
    meta = dict(kuairec.meta)
    del meta["files"]
    (kuairec.root / "meta.json").write_text(json.dumps(meta))
    assert PreparedDataset(kuairec.root).labels("interest")
    (kuairec.root / "organic.parquet").unlink()
    with pytest.raises(FlexBenchError, match="do not match the fingerprint in meta.json"):
        PreparedDataset(kuairec.root)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with the mock dataset and two stored runs (random, candidate-order on mock/interest)."""
    from flexbench.suite import EvalRequest, run_eval

    root = tmp_path_factory.mktemp("pristine")
    store = ResultStore(root / "results")
    dataset = open_dataset("mock", root / "prepared")
    for ranker in ("random", "candidate-order"):
        run_eval(EvalRequest(ranker, "mock", "interest"), store=store, dataset=dataset)
    return root


def _stored_run(data_root: Path, pristine: Path) -> ResultStore:
    shutil.copytree(pristine, data_root, dirs_exist_ok=True)
    return ResultStore()


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


RESULT_FAULTS = [
    ("ndcg@10 edited", lambda j, _: _edit_json(j, lambda d: d["metrics"].update({"ndcg@10": 0.99})),
     r"random.json: ndcg@10 = 0.99 but its 12 records in random.jsonl give 0\.\d+; the file was edited"),
    ("n edited", lambda j, _: _edit_json(j, lambda d: d.update(n_instances=20)),
     r"random.json: says n = 20 but its records random.jsonl has 12 records"),
    ("jsonl deleted", lambda _, r: r.unlink(), r"random.json: says n = 12 but its records random.jsonl missing"),
    ("jsonl half-truncated", lambda _, r: _truncate_half(r), r"random.json: says n = 12 but its records random.jsonl has"),
    ("garbage json", lambda j, _: j.write_bytes(b"x{\x00"), r"random.json: not a FlexBench result \(invalid JSON"),
    ("empty json", lambda j, _: j.write_text(""), r"random.json: not a FlexBench result \(the file is empty\)"),
    ("json list", lambda j, _: j.write_text("[]"), r"random.json: not a FlexBench result \(a JSON list"),
    ("json without fields", lambda j, _: j.write_text('{"schema_version": 1}'), (r"random.json: not a FlexBench result "
                                                                                  r"\(no key, n_instances")),
    ("metric not a number", lambda j, _: _edit_json(j, lambda d: d["metrics"].update({"ndcg@5": "high"})),
     r"random.json: not a FlexBench result \('metrics' must map names to finite numbers\)"),
    ("record garbled", lambda _, r: r.write_text('{"instance_id": 3}\n'), r"random.jsonl: record 1 is not an instance"),
]


@pytest.mark.parametrize(("tamper", "match"), [f[1:] for f in RESULT_FAULTS], ids=[f[0] for f in RESULT_FAULTS])
def test_broken_results_are_named_and_never_shown(data_root: Path, pristine: Path, tamper, match: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from flexbench.leaderboard import build_boards
    from flexbench.suite import EvalRequest, run_eval

    store = _stored_run(data_root, pristine)
    jsonl, agg = store.run_paths(KEY)
    tamper(agg, jsonl)
    with pytest.raises(FlexBenchError, match=match) as err:
        store.load_run(KEY)
    assert "\n" not in str(err.value)
    capsys.readouterr()
    (board,) = build_boards(store)  # the leaderboard: the bad run reported by name and left out
    assert [row.ranker for row in board.rows] == ["candidate-order"]
    assert "skipped " in capsys.readouterr().err
    with pytest.raises(FlexBenchError, match=match):  # eval of that run: refused, suggesting --overwrite
        run_eval(EvalRequest("random", "mock", "interest"), store=store)
    run_eval(EvalRequest("random", "mock", "novelty"), store=store)  # every other run is unaffected
    fresh = run_eval(EvalRequest("random", "mock", "interest", overwrite=True), store=store)
    assert store.load_run(KEY) == fresh


def test_eval_all_reports_a_bad_file_and_runs_everything_else(data_root: Path, pristine: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from flexbench import suite
    from flexbench.ranker import REGISTRY

    store = _stored_run(data_root, pristine)
    store.run_paths(KEY)[1].write_text("not json")
    monkeypatch.setattr(suite, "REGISTRY", {k: REGISTRY[k] for k in ("random", "candidate-order")})
    report = suite.run_all(store=store, datasets=["mock"], say=lambda s: None)
    assert [(what, reason.split(": ")[0]) for what, reason in report.failed] == \
        [("random on mock/interest", str(store.run_paths(KEY)[1]))]
    assert len(report.ran) == 2 * len(open_dataset("mock").needs) - 1
