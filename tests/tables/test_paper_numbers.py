"""The shipped paper numbers: complete, consistent with the layouts and with the paper's gain rows."""

from __future__ import annotations

import pytest

from flexbench.tables.layout import GAIN_BASE, GAIN_ROW, GAIN_TARGET, TABLES, table_by_id
from flexbench.tables.paper import load_paper_numbers, parse_paper_numbers


def test_every_number_maps_to_a_layout_cell() -> None:
    paper = load_paper_numbers()
    cells = {(t.table_id, g.dataset, g.need, r.ranker, m)
             for t in TABLES for g in t.groups for r in t.rows for m in g.metrics}
    cells |= {(t.table_id, g.dataset, g.need, GAIN_ROW, m) for t in TABLES if t.gain_row
              for g in t.groups for m in g.metrics}
    critic = {k for k in paper.values if k[0] == "critic"}
    assert set(paper.values) - critic <= cells
    assert len(critic) == 4


@pytest.mark.parametrize(("table", "dataset", "need", "row", "metric", "value"), [
    ("1", "kuairec", "interest", "flexrec", "ndcg@5", 0.597),
    ("1", "ml-1m", "interest", "bert4rec", "precision@5", 0.128),
    ("2", "ml-1m", "novelty", "flexrec", "mrr@5", 0.267),
    ("3", "esci", "esci", "rec-r1", "recall@5", 0.652),
    ("6", "kuairec", "trend", GAIN_ROW, "recall@5", -27.4),
    ("7", "kuairec", "interest", "flexrec-ppo-dense", "ndcg@10", 0.661),
    ("8", "kuairec", "interest", "flexrec-itemknn", "recall@5", 0.208),
    ("9", "kuairec", "interest", "rank-grpo-dense", "mrr@5", 0.517),
    ("9", "kuairec", "interest", "flexrec-dense", "ndcg@5", 0.607),  # the paper's "GRPO (ours)" row
    ("critic", "kuairec", "", "critic", "pearson_var", 0.271),
])
def test_spot_values(table: str, dataset: str, need: str, row: str, metric: str, value: float) -> None:
    assert load_paper_numbers().get(table, dataset, need, row, metric) == value


def test_absent_cells_stay_absent() -> None:
    paper = load_paper_numbers()
    assert paper.get("3", "esci", "esci", "bert4rec", "ndcg@5") is None  # "—" in the paper
    assert paper.get("critic", "ml-1m", "", "critic", "mse") is None


def test_transcription_agrees_with_the_papers_gain_rows() -> None:
    """Each paper gain equals (FlexRec - zero-shot) / zero-shot up to the 3-decimal rounding of both."""
    paper = load_paper_numbers()
    checked = 0
    for table in (t for t in TABLES if t.gain_row):
        for g in table.groups:
            for m in g.metrics:
                base = paper.get(table.table_id, g.dataset, g.need, GAIN_BASE, m)
                target = paper.get(table.table_id, g.dataset, g.need, GAIN_TARGET, m)
                gain = paper.get(table.table_id, g.dataset, g.need, GAIN_ROW, m)
                tol = 100 * 0.0005 * (1 / base + target / base**2) + 0.05
                assert abs(100 * (target - base) / base - gain) <= tol, (table.table_id, g.dataset, m)
                checked += 1
    assert checked == 35


def test_duplicate_rows_are_refused() -> None:
    text = "table,dataset,need,train_need,row,metric,value\n1,a,b,,r,ndcg@5,0.1\n1,a,b,,r,ndcg@5,0.2\n"
    with pytest.raises(ValueError, match="duplicate"):
        parse_paper_numbers(text)


def test_layout_shapes_follow_the_paper() -> None:
    t1 = table_by_id("1")
    assert [g.metrics[3] for g in t1.groups] == ["recall@5", "precision@5"]
    assert table_by_id("3").groups[0].metrics == ("ndcg@5", "ndcg@10", "ndcg@30", "precision@5", "recall@5")
    assert [r.ranker for r in table_by_id("9").rows][-5:] == [
        "sft-dense", "ppo-dense", "rec-r1-dense", "rank-grpo-dense", "flexrec-dense"]
    assert table_by_id("2").train_need == table_by_id("6").train_need == "interest"
    assert [s.title for s in table_by_id("7").sections] == ["GRPO", "PPO"]
    assert all(r.dense and r.ranker.endswith("-dense") for r in table_by_id("7").rows)
