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
from flexbench.vocabulary import get_need
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
    assert zero_shot.count(MISSING) == 10  # six metrics + invalid rate + three order columns
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


# ---- protocol cards, need switch, formats -----------------------------------------------------------


def _boards(store: ResultStore, mock_dataset: PreparedDataset):
    return build_boards(store, prepared=lambda name: mock_dataset if name == "mock" else None)


def test_protocol_card_states_the_protocol(store: ResultStore, mock_dataset: PreparedDataset) -> None:
    (board,) = _boards(store, mock_dataset)
    card = board.card
    assert card.fingerprints == (mock_dataset.fingerprint,) and card.split == "train" and card.data.k == "30"
    assert card.data.history == "10 interactions" and card.n_instances == 96
    assert card.data.encoder == "synthetic embeddings"
    random_run = store.load_run(RunKey("random", "mock", "interest", "train"))
    assert card.random_floor.value == random_run.metrics["ndcg@5"] and "stored `random` run" in card.random_floor.source
    assert card.oracle.value == 1.0 and "oracle-interest" in card.oracle.source
    assert card.limited == ("candidate-order: 20 of 96", "zero-shot: 30 of 96 (incomplete, 12 so far)")
    fields = dict(card.fields())
    assert fields["K"] == "30" and fields["limited rows"].startswith("candidate-order: 20 of 96; zero-shot")
    assert fields["dataset"].startswith(f"mock (data {mock_dataset.fingerprint[:12]})")


def test_card_never_describes_other_data(store: ResultStore, mock_dataset: PreparedDataset,
                                         tmp_path: Path) -> None:
    from flexbench.mock import write_mock_dataset

    other = write_mock_dataset(tmp_path / "mock", seed=8)
    (board,) = build_boards(store, prepared=lambda name: other)
    assert board.card.data.k == "not recorded" and "not the runs'" in board.card.data_note
    (board,) = build_boards(store, prepared=lambda name: None)
    assert board.card.data_note == "no prepared copy here; details not shown"


def test_exact_random_floor_matches_enumeration() -> None:
    from itertools import permutations

    from flexbench.leaderboard.protocol import expected_random, oracle_share
    from flexbench.metrics import ndcg_at

    rng = np.random.default_rng(1)
    gains = [rng.random(5) * (rng.random(5) > 0.4), np.array([1.0, 0.0, 0.0]), np.zeros(4)]
    for k in (2, 5):
        exact = []
        for g in gains:
            ideal = np.sort(g)[::-1][None, :]
            perms = [g[list(p)][None, :] for p in permutations(range(len(g)))]
            exact.append(np.mean([ndcg_at(p, ideal, k)[0] for p in perms]))
        assert expected_random(gains, k) == pytest.approx(np.mean(exact), abs=1e-12)
    assert expected_random([np.array([1.0, 0.0, 0.0])], 5) == pytest.approx((1 + 1 / np.log2(3) + 0.5) / 3)
    assert oracle_share(gains) == pytest.approx(2 / 3)


def test_floor_is_computed_without_a_random_run(store: ResultStore, mock_dataset: PreparedDataset) -> None:
    from flexbench.leaderboard import build_board
    from flexbench.leaderboard.protocol import expected_random

    runs = [r for r in store.load_runs() if r.key.ranker != "random"]
    board = build_board(store, runs, prepared=lambda name: mock_dataset)
    labels = mock_dataset.labels("interest", "train")
    expected = expected_random([np.array(lab.gains) for lab in labels.values()], 5)
    assert board.card.random_floor.value == pytest.approx(expected)
    assert board.card.random_floor.source == "exact expectation over the 96 instances' labels"


def test_cells_carry_t_intervals(store: ResultStore) -> None:
    from scipy import stats

    (board,) = build_boards(store)
    row = next(r for r in board.rows if r.ranker == "random")
    values = [rec.metrics["ndcg@5"] for rec in store.load_records(RunKey("random", "mock", "interest", "train"))]
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert row.cells["ndcg@5"].interval == pytest.approx((lo, hi))
    assert next(r for r in board.rows if r.ranker == "zero-shot").cells["ndcg@5"].interval is None


def _switch_store(root: Path, mock_dataset: PreparedDataset) -> ResultStore:
    store = ResultStore(root)
    c = RankerContext(mock_dataset, options={"oracle_need": "novelty"})
    xs = mock_dataset.instances("test")
    for need in ("interest", "novelty"):
        for ranker, name in ((RandomRanker(c), "random"), (OracleRanker(c), "oracle-novelty")):
            evaluate(ranker, xs, mock_dataset.labels(need), get_need(need), key=RunKey(name, "mock", need, "test"),
                     store=store, provenance={"data_fingerprint": mock_dataset.fingerprint}, config={"ranker": name})
    return store


def test_need_switch_ranks_each_need(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    from flexbench.leaderboard import need_switches

    store = _switch_store(tmp_path / "results", mock_dataset)
    boards = build_boards(store)
    (switch,) = need_switches(boards)
    assert switch.needs == ("interest", "novelty") and [r.ranker for r in switch.rows] == ["random", "oracle-novelty"]
    oracle = switch.rows[1]
    assert oracle.cells["novelty"].rank == 1 and oracle.cells["novelty"].value == 1.0
    interest = {r.ranker: r.cells["interest"] for r in switch.rows}
    assert sorted(c.rank for c in interest.values()) == [1, 2]
    text = (write_markdown(boards, tmp_path / "md")[0]).read_text()
    assert "## Need switch (NDCG@5, test split)" in text and "| oracle-novelty | oracle |" in text


def test_json_and_csv_formats(store: ResultStore, mock_dataset: PreparedDataset) -> None:
    import csv
    import io
    import json

    from flexbench.leaderboard.formats import leaderboard_csv, leaderboard_json

    boards = _boards(store, mock_dataset)
    doc = json.loads(leaderboard_json(boards))
    (board,) = doc["boards"]
    runs = {r["ranker"]: r for r in board["runs"]}
    stored = store.load_run(RunKey("oracle-interest", "mock", "interest", "train"))
    assert runs["oracle-interest"]["metrics"] == dict(stored.metrics) and runs["oracle-interest"]["best"]
    assert runs["zero-shot"]["metrics"]["ndcg@5"] is None and runs["zero-shot"]["complete"] is False
    assert "ndcg@5" in runs["random"]["worse_than_best"] and len(runs["random"]["ci95"]["ndcg@5"]) == 2
    protocol = board["protocol"]
    assert protocol["fingerprints"] == [mock_dataset.fingerprint] and protocol["data"]["k"] == "30"
    assert protocol["random_floor"]["metric"] == "ndcg@5" and protocol["n_instances"] == 96
    rows = list(csv.DictReader(io.StringIO(leaderboard_csv(boards))))
    assert [r["ranker"] for r in rows] == [r.ranker for r in boards[0].rows]
    assert float(rows[2]["ndcg@5"]) == stored.metrics["ndcg@5"] and rows[2]["k"] == "30"
