"""Cell resolution: filled, missing, incomplete and other-train-need cells, gains, marks, models."""

from __future__ import annotations

import pytest
from table_fixtures import add_run, scores

from flexbench.results import ResultStore
from flexbench.tables.cells import CellStatus, resolve_table
from flexbench.tables.layout import table_by_id
from flexbench.tables.markdown import model_text
from flexbench.tables.paper import load_paper_numbers
from flexbench.tables.setting import PaperScaleStore, PaperSetting, plan_paper_setting
from flexbench.tables.significance import BETTER, compare_records, paired_test
from flexbench.types import InstanceRecord, RunKey


def _resolve(store: ResultStore, table_id: str):
    return resolve_table(table_by_id(table_id), store, load_paper_numbers())


def test_only_stored_cells_are_filled(fixed_store: ResultStore) -> None:
    t1 = _resolve(fixed_store, "1")
    flex = t1.row("flexrec").cells
    stored = fixed_store.load_run(RunKey("flexrec", "kuairec", "interest"))
    assert flex[0][0].status is CellStatus.OK and flex[0][0].value == stored.metrics["ndcg@5"]
    assert flex[0][0].paper == 0.597
    assert all(c.status is CellStatus.MISSING and c.value is None for c in flex[1])  # no ML-1M run
    for ranker in ("bert4rec", "gpt-4o", "tallrec", "rec-r1", "rank-grpo"):
        assert all(c.value is None for g in t1.row(ranker).cells for c in g)
    assert {r.key.ranker for r in t1.runs} == {"star", "zero-shot", "flexrec"}


def test_run_trained_on_another_need_fills_no_cell(fixed_store: ResultStore) -> None:
    cell = _resolve(fixed_store, "2").row("flexrec").cells[0][0]
    assert cell.status is CellStatus.OTHER_TRAIN_NEED and cell.value is None
    assert "novelty" in cell.note


def test_incomplete_run_is_not_shown_as_a_number(fixed_store: ResultStore) -> None:
    cell = _resolve(fixed_store, "3").row("rec-r1").cells[0][0]
    assert cell.status is CellStatus.INCOMPLETE and cell.value is None


def test_gain_row_is_computed_from_stored_numbers(fixed_store: ResultStore) -> None:
    t1 = _resolve(fixed_store, "1")
    zs, fx = t1.row("zero-shot").cells[0][0].value, t1.row("flexrec").cells[0][0].value
    assert t1.gain[0][0].value == pytest.approx(100 * (fx - zs) / zs)
    assert t1.gain[0][0].paper == 59.2
    assert t1.gain[1][0].value is None  # ML-1M FlexRec missing: no gain invented


def test_marks_against_the_strongest_comparison_row(fixed_store: ResultStore) -> None:
    t1 = _resolve(fixed_store, "1")
    cell = t1.row("flexrec").cells[0][0]
    assert cell.mark == BETTER and "vs star" in cell.note  # STAR beats zero-shot on this store
    assert all(c.mark == "" for c in t1.row("star").cells[0])
    t7 = _resolve(fixed_store, "7")
    assert t7.row("flexrec-dense").cells[0][0].mark == BETTER
    assert "vs flexrec-noncausal-dense" in t7.row("flexrec-dense").cells[0][0].note


def test_model_column_names_models_that_differ_from_the_papers(fixed_store: ResultStore) -> None:
    t1 = _resolve(fixed_store, "1")
    titles = ["KuaiRec", "MovieLens-1M"]
    assert model_text(t1.row("zero-shot"), titles) == "KuaiRec: smollm2"  # ML-1M ran the paper's Qwen
    assert model_text(t1.row("flexrec"), titles) == "smollm2"
    assert model_text(t1.row("star"), titles) == "all-MiniLM-L6-v2"
    assert model_text(t1.row("bert4rec"), titles) == ""


def _recs(values: list[float]) -> list[InstanceRecord]:
    return [InstanceRecord(f"i{i}", None, None, True, (), (), 0, 0, 0, {"ndcg@5": v}) for i, v in enumerate(values)]


def test_paired_test_marks_only_clear_differences() -> None:
    a = [0.5 + 0.01 * (i % 5) for i in range(30)]
    assert paired_test(a, a).mark() == ""
    assert paired_test([x + 0.2 + 0.01 * (i % 3) for i, x in enumerate(a)], a).mark() == BETTER
    assert compare_records(_recs(a), _recs(a[:-1]), "ndcg@5") is None  # different instance sets: no test


def test_paper_setting_filters_only_with_a_gpu(fixed_store: ResultStore) -> None:
    same, lines = plan_paper_setting(fixed_store, has_cuda=False)
    assert same is fixed_store and any("Falling back to the bundled sample" in line for line in lines)
    view, lines = plan_paper_setting(fixed_store, has_cuda=True)
    assert isinstance(view, PaperScaleStore) and view.load_runs() == []  # fixed runs have 20 instances
    small = PaperScaleStore(fixed_store, PaperSetting(test_instances=20))
    assert small.load_run(RunKey("flexrec", "kuairec", "interest")) is not None
    assert small.load_run(RunKey("rec-r1", "esci", "esci")) is None  # 7 instances


def test_unrecorded_model_is_never_presumed_the_papers(fixed_store: ResultStore) -> None:
    add_run(fixed_store, "gpt-4o", "ml-1m", "interest", scores(0.5, 0.1, 9), model=None)
    row = _resolve(fixed_store, "1").row("gpt-4o")
    assert model_text(row, ["KuaiRec", "MovieLens-1M"]) == "model not recorded"


def test_trained_run_without_a_recorded_train_need_fills_no_cell(fixed_store: ResultStore) -> None:
    add_run(fixed_store, "tallrec", "kuairec", "interest", scores(0.5, 0.1, 9), model="smollm2", train_need=None)
    cell = _resolve(fixed_store, "1").row("tallrec").cells[0][0]
    assert cell.status is CellStatus.TRAIN_NEED_UNRECORDED and cell.value is None
