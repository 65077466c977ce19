"""Figure 2 (joint vs single-need policies) from stored runs that the real harness wrote.

The runs are reference rankers evaluated by :func:`flexbench.harness.evaluate` on the mock dataset and
stored under the labels Figure 2 reads (``zero-shot``, ``flexrec``, ``flexrec-joint``) with the train need
each would record: real records and real aggregates, standing in for trained policies only by label.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexbench.cli import app
from flexbench.harness import evaluate
from flexbench.ranker import RankerContext, build_ranker, get_entry
from flexbench.results import ResultStore
from flexbench.suite import EvalRequest
from flexbench.tables.cells import CellStatus
from flexbench.tables.joint import Series, resolve_panel, write_joint_figures
from flexbench.tables.layout import JOINT, JointFigureLayout
from flexbench.tables.markdown import render_joint
from flexbench.types import RunKey
from flexbench.vocabulary import get_need

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MOCK_FIGURE = JointFigureLayout("2", "Figure 2 on mock", "flexrec", ("mock",))
LIMIT = 12


def _store_run(store: ResultStore, dataset, ranker: str, label: str, need: str,  # type: ignore[no-untyped-def]
               train_need: str | None) -> None:
    built = build_ranker(ranker, RankerContext(dataset))
    evaluate(built, dataset.instances("test"), dataset.labels(need, "test"), get_need(need),
             key=RunKey(label, dataset.name, need, "test"), store=store, limit=LIMIT,
             config={"ranker": ranker}, provenance={"train_need": train_need, "model": "reference"})


@pytest.fixture()
def joint_store(tmp_path: Path, mock_dataset) -> ResultStore:  # type: ignore[no-untyped-def]
    """Zero-shot everywhere, single-need on interest and novelty (trend: trained on interest), joint everywhere."""
    store = ResultStore(tmp_path / "results")
    for need in ("interest", "novelty", "trend"):
        _store_run(store, mock_dataset, "random", "zero-shot", need, None)
        _store_run(store, mock_dataset, "oracle-interest", "flexrec-joint", need, "all")
    for need in ("interest", "novelty"):
        _store_run(store, mock_dataset, f"oracle-{need}", "flexrec", need, need)
    _store_run(store, mock_dataset, "oracle-interest", "flexrec", "trend", "interest")
    return store


def test_bars_are_the_stored_runs_with_the_right_train_need(joint_store: ResultStore) -> None:
    panel = resolve_panel(MOCK_FIGURE, "mock", joint_store)
    assert panel.needs == ("interest", "novelty", "trend")
    for need in panel.needs:
        for series, label in ((Series.BASE, "zero-shot"), (Series.JOINT, "flexrec-joint")):
            bar = panel.bar(series, need)
            stored = joint_store.load_run(RunKey(label, "mock", need, "test"))
            assert bar.status is CellStatus.OK and bar.values["ndcg@5"] == stored.metrics["ndcg@5"]
    assert panel.bar(Series.SINGLE, "novelty").values["ndcg@5"] == pytest.approx(1.0)  # the need's own oracle
    assert panel.bar(Series.SINGLE, "interest").values == panel.bar(Series.JOINT, "interest").values
    trend = panel.bar(Series.SINGLE, "trend")
    assert trend.status is CellStatus.OTHER_TRAIN_NEED and not trend.values and "interest" in trend.note
    assert [b.key.ranker for b in panel.missing] == ["flexrec"]
    assert len(panel.runs) == 8  # every drawn bar, not the run trained on another need


def test_png_and_page_are_written_and_reproducible(joint_store: ResultStore, tmp_path: Path) -> None:
    first = write_joint_figures(joint_store, tmp_path / "a", MOCK_FIGURE)
    again = write_joint_figures(joint_store, tmp_path / "b", MOCK_FIGURE)
    png = (tmp_path / "a" / first[0].path).read_bytes()
    assert png.startswith(PNG_MAGIC) and png == (tmp_path / "b" / again[0].path).read_bytes()
    page = render_joint(first)
    assert page == render_joint(again)
    value = joint_store.load_run(RunKey("flexrec-joint", "mock", "novelty", "test")).metrics["ndcg@5"]
    assert "| Explore New Topics | " in page and f"{value:.3f}" in page
    assert "other train need" in page and "No joint run stored" not in page
    assert "`flexbench train flexrec --dataset mock --need N`" in page  # the single-need trend bar


def test_without_a_joint_run_the_page_names_the_commands(tmp_path: Path, mock_dataset) -> None:  # type: ignore[no-untyped-def]
    store = ResultStore(tmp_path / "results")
    _store_run(store, mock_dataset, "random", "zero-shot", "interest", None)
    panel, = write_joint_figures(store, tmp_path / "out", MOCK_FIGURE)
    assert panel.path is not None and all(panel.bar(Series.JOINT, n).status is CellStatus.MISSING
                                          for n in panel.needs)
    page = render_joint([panel])
    assert "No joint run stored (interest, novelty, trend): run `flexbench train flexrec --dataset mock " \
           "--needs all` then `flexbench eval flexrec --dataset mock --need N --set train_need=all " \
           "--set label=flexrec-joint`" in page


def test_the_printed_eval_command_is_one_the_trained_ranker_takes() -> None:
    options = {"train_need": "all", "label": JOINT.joint_label}
    get_entry(JOINT.method).check_options(options)  # refused options would raise
    assert EvalRequest(JOINT.method, "kuairec", "novelty", options=options).label == "flexrec-joint"


def test_tables_command_writes_figure2_from_an_empty_store(data_root: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tables", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "out" / "figure2.md").read_text(encoding="utf-8")
    for dataset in JOINT.datasets:
        assert f"`flexbench train flexrec --dataset {dataset} --needs all`" in page
    assert not list((tmp_path / "out").glob("figure2-*.png"))  # nothing stored: nothing drawn
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert 'id="figure-2"' in html and "No joint run stored" in html
