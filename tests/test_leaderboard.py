"""Leaderboard: rendered only from stored runs; best, significance marks, incomplete cells, n/N."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from baselines.reference import CandidateOrderRanker, RandomRanker
from flexbench.harness import evaluate
from flexbench.leaderboard import (
    MISSING,
    WORSE_MARK,
    build_boards,
    paired_pvalues,
    rich_tables,
    write_markdown,
)
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext
from flexbench.results import ResultStore
from flexbench.types import RunKey
from needs.base import get_need
from needs.oracle import OracleRanker


@pytest.fixture(scope="module")
def store(mock_dataset: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> ResultStore:
    store = ResultStore(tmp_path_factory.mktemp("results"))
    c = RankerContext(mock_dataset, options={"oracle_need": "interest"})
    xs, labels, need = mock_dataset.instances("train"), mock_dataset.labels("interest"), get_need("interest")
    prov = {"data_fingerprint": mock_dataset.fingerprint}
    for ranker, name, limit in ((OracleRanker(c), "oracle-interest", None), (RandomRanker(c), "random", None),
                                (CandidateOrderRanker(c), "candidate-order", 20)):
        evaluate(ranker, xs, labels, need, key=RunKey(name, "mock", "interest", "train"), store=store,
                 provenance=prov, limit=limit, config={"ranker": name})
    done = evaluate(RandomRanker(c), xs, labels, need, key=RunKey("zero-shot", "mock", "interest", "train"),
                    store=store, provenance=prov, limit=30, config={"ranker": "zero-shot"})
    store.write_aggregate(type(done)(done.key, 12, done.metrics, done.rates, done.provenance, complete=False))
    return store


def test_board_marks_best_worse_and_incomplete(store: ResultStore) -> None:
    (board,) = build_boards(store)
    rows = {r.ranker: r for r in board.rows}
    assert [r.ranker for r in board.rows] == ["random", "candidate-order", "oracle-interest", "zero-shot"]
    oracle, rand = rows["oracle-interest"], rows["random"]
    assert all(c.best and not c.worse for c in oracle.cells.values())
    assert rand.cells["ndcg@5"].worse and not rand.cells["ndcg@5"].best
    assert all(c.value is None for c in rows["zero-shot"].cells.values())
    assert rows["zero-shot"].n == "12/30 (incomplete)" and rows["zero-shot"].invalid_rate is None
    assert rows["candidate-order"].n == "20/96" and rows["random"].n == "96"


def test_markdown_and_rich_rendering(store: ResultStore, tmp_path: Path) -> None:
    boards = build_boards(store, dataset="mock")
    (path,) = write_markdown(boards, tmp_path / "leaderboards")
    text = path.read_text()
    assert path.name == "mock.md" and "## Maximizing Interest (`interest`, train split)" in text
    assert "NDCG@5 ↑" in text and "invalid ↓" in text and "**1.0000**" in text
    zero_shot = next(line for line in text.splitlines() if line.startswith("| zero-shot"))
    assert zero_shot.count(MISSING) == 7  # six metrics + invalid rate
    random_line = next(line for line in text.splitlines() if line.startswith("| random"))
    assert WORSE_MARK in random_line
    console = Console(width=200, record=True)
    for table in rich_tables(boards):
        console.print(table)
    assert "oracle-interest" in console.export_text()
    assert build_boards(store, dataset="esci") == []


def test_paired_pvalues() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(200)
    assert paired_pvalues(a, a) == (1.0, 1.0)
    t_p, fisher_p = paired_pvalues(a + 0.2, a + rng.normal(0, 0.05, 200), seed=1)
    assert t_p < 1e-6 and fisher_p == pytest.approx(1 / 1001)
    b = a + rng.normal(0, 0.05, 200)
    assert paired_pvalues(a, b, seed=3) == paired_pvalues(a, b, seed=3)
    assert paired_pvalues(a, b)[1] > 0.01  # pure noise is not significant
