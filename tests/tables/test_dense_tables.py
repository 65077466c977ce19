"""Tables 7 and 9 are the dense setting: their trained rows are ``*-dense`` methods read from ``kuairec-dense``."""

from __future__ import annotations

from table_fixtures import add_run, scores

from flexbench.ranker import REGISTRY
from flexbench.results import ResultStore
from flexbench.tables.cells import CellStatus, resolve_table, run_key
from flexbench.tables.layout import table_by_id
from flexbench.tables.paper import load_paper_numbers
from flexbench.trainers import TRAINERS


def _resolve(store: ResultStore, table_id: str):  # type: ignore[no-untyped-def]
    return resolve_table(table_by_id(table_id), store, load_paper_numbers())


def test_every_trained_row_of_tables_7_and_9_is_a_dense_method_by_name() -> None:
    for table_id in ("7", "9"):
        layout = table_by_id(table_id)
        for row in (r for r in layout.rows if r.trained):
            assert row.dense and row.ranker.endswith("-dense"), (table_id, row.ranker)
            assert row.ranker in REGISTRY and row.ranker in TRAINERS  # `flexbench eval/train <name>`
            assert run_key(row, layout.groups[0]).dataset == "kuairec-dense"
    baseline = table_by_id("9").rows[0]
    assert not baseline.dense and run_key(baseline, table_by_id("9").groups[0]).dataset == "kuairec"


def test_dense_rows_read_kuairec_dense_runs_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = ResultStore(tmp_path)
    add_run(store, "flexrec-dense", "kuairec", "interest", scores(0.5, 0.1, 1), model="smollm2",
            train_need="interest")  # the sparse dataset: not the dense setting
    add_run(store, "flexrec", "kuairec", "interest", scores(0.6, 0.1, 2), model="smollm2", train_need="interest")
    for table_id in ("7", "9"):
        assert _resolve(store, table_id).row("flexrec-dense").cells[0][0].status is CellStatus.MISSING
    add_run(store, "flexrec-dense", "kuairec-dense", "interest", scores(0.55, 0.1, 3), model="smollm2",
            train_need="interest")
    t7_layout = table_by_id("7")
    row = next(r for r in t7_layout.rows if r.ranker == "flexrec-dense")
    stored = store.load_run(run_key(row, t7_layout.groups[0]))
    t7, t9 = _resolve(store, "7").row("flexrec-dense"), _resolve(store, "9").row("flexrec-dense")
    assert t7.cells[0][0].value == t9.cells[0][0].value == stored.metrics["ndcg@5"]
    assert t7.cells[0][0].paper == t9.cells[0][0].paper == 0.607  # the same paper row in both tables
    assert all(r.ranker != "flexrec" for r in table_by_id("7").rows)  # the sparse run fills Tables 1 and 8 only


def test_dense_run_trained_on_another_need_fills_no_cell(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = ResultStore(tmp_path)
    add_run(store, "sft-dense", "kuairec-dense", "interest", scores(0.5, 0.1, 4), model="smollm2",
            train_need="all")
    cell = _resolve(store, "9").row("sft-dense").cells[0][0]
    assert cell.status is CellStatus.OTHER_TRAIN_NEED and "all" in cell.note
