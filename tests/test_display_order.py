"""Display orders: one place decides them, prompts follow them, P permutations are stored, resumed and
averaged, and the boards' order columns separate order-blind rankers (canaries) from a display-order copier."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from baselines.popularity import PopularityRanker
from baselines.reference import RandomRanker
from baselines.star import STARRanker
from flexbench.display import display_order, present, shown_ids
from flexbench.harness import evaluate
from flexbench.leaderboard.formats import leaderboard_csv, leaderboard_json
from flexbench.leaderboard.model import build_boards
from flexbench.leaderboard.text import markdown_for
from flexbench.llm.prompts import build_prompt
from flexbench.order_stats import kendall_tau, merge_trials, order_stats
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext
from flexbench.results import ResultStore
from flexbench.types import Instance, NeedSpec, Ranking, RunKey
from flexbench.vocabulary import get_need
from needs.oracle import OracleRanker

INTEREST = get_need("interest")


def _legacy_shown(x: Instance, seed: int) -> tuple[str, ...]:
    """The shown order prompts used before display orders existed (copied from that version)."""
    def key(item: str) -> str:
        return hashlib.sha256(f"{seed}\x1f{x.instance_id}\x1f{item}".encode()).hexdigest()
    return tuple(sorted(x.candidate_ids, key=lambda item: (key(item), item)))


class Copier:
    """An outside ranker that returns the display order unchanged."""

    name = "copier"

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        return [Ranking(x.instance_id, x.display_ids) for x in instances]


class Interrupted(Exception):
    pass


class Flaky(Copier):
    """Fails on its second call: a run interrupted after one batch."""

    def __init__(self) -> None:
        self.calls = 0

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        self.calls += 1
        if self.calls == 2:
            raise Interrupted
        return super().rank(instances, need)


def test_order_zero_is_the_legacy_prompt_order_and_prompts_follow_the_display(mock_dataset: PreparedDataset) -> None:
    x = mock_dataset.instances("test")[0]
    assert display_order(x, 7) == _legacy_shown(x, 7) == build_prompt(x, INTEREST, seed=7).shown_ids
    orders = {display_order(x, 7, p) for p in range(4)}
    assert len(orders) == 4 and all(sorted(o) == sorted(x.candidate_ids) for o in orders)
    shown = present(x, 7, 2)
    assert shown.candidates == x.candidates and shown_ids(shown, 0) == display_order(x, 7, 2)
    prompt = build_prompt(shown, INTEREST, seed=7)
    assert prompt.shown_ids == display_order(x, 7, 2)
    assert prompt != build_prompt(x, INTEREST, seed=7) and sorted(prompt.labels) == sorted(
        build_prompt(x, INTEREST, seed=7).labels)
    with pytest.raises(ValueError, match="permutation of its candidates"):
        Instance(x.instance_id, x.dataset, x.split, x.candidates, history=x.history, display_ids=("a",))


def test_kendall_tau_by_hand() -> None:
    assert kendall_tau("abcd", "abcd") == 1.0 and kendall_tau("dcba", "abcd") == -1.0
    assert kendall_tau("bac", "abc") == pytest.approx(1 / 3)  # C = 2, D = 1 of 3 pairs
    assert kendall_tau("a", "a") == 0.0


def _run(ranker: object, data: PreparedDataset, store: ResultStore | None, p: int, **kw: object):
    return evaluate(ranker, data.instances("test"), data.labels("interest", "test"), INTEREST, store=store,
                    permutations=p, key=RunKey(ranker.name, "mock", "interest", "test"), **kw)


def test_permutations_store_every_trial_resume_per_trial_and_average(mock_dataset: PreparedDataset,
                                                                     tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    key = RunKey("copier", "mock", "interest", "test")
    flaky = Flaky()
    with pytest.raises(Interrupted):
        _run(flaky, mock_dataset, store, 3, limit=5, batch_size=4)
    assert [(t.instance_id, t.permutation) for t in store.load_trials(key)][:4] == [
        (i, p) for i in [x.instance_id for x in mock_dataset.instances("test")[:2]] for p in range(3)][:4]
    result = _run(Copier(), mock_dataset, store, 3, limit=5, batch_size=4)
    trials = store.load_trials(key)
    assert len(trials) == 15 and len({(t.instance_id, t.permutation) for t in trials}) == 15
    assert result.n_instances == 5 and result.provenance["n_resumed"] == 4
    assert result.provenance["config"]["permutations"] == 3 and result.provenance["permutations"] == 3
    for t in trials:  # every trial stores the order it was shown and its own output
        x = next(x for x in mock_dataset.instances("test") if x.instance_id == t.instance_id)
        assert t.display_ids == display_order(x, 0, t.permutation) == t.output_ids
    per_instance = merge_trials(trials)
    assert len(per_instance) == 5 and result.metrics["ndcg@5"] == pytest.approx(
        sum(r.metrics["ndcg@5"] for r in per_instance) / 5)
    assert result.metrics["ndcg@5"] == pytest.approx(sum(t.metrics["ndcg@5"] for t in trials) / 15)
    assert store.load_run(key) == result  # verified against its trials on load
    with pytest.raises(Exception, match="another config"):
        _run(Copier(), mock_dataset, store, 2, limit=5)


def test_one_permutation_keeps_the_stored_format(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    result = _run(RandomRanker(RankerContext(mock_dataset, seed=0)), mock_dataset, store, 1, limit=4)
    assert "permutations" not in result.provenance["config"] and len(store.load_trials(result.key)) == 4
    jsonl = store.run_paths(result.key)[0]
    old = [json.loads(line) for line in jsonl.read_text().splitlines()]
    for row in old:  # a record written before display orders existed
        del row["permutation"], row["display_ids"]
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in old))
    assert store.load_run(result.key) == result
    stats = order_stats(store.load_trials(result.key), seed=0)
    assert stats is not None and stats.permutations == 1 and stats.spread is None
    again = _run(RandomRanker(RankerContext(mock_dataset, seed=0)), mock_dataset, store, 1, limit=4)
    assert again.metrics == result.metrics and again.provenance["n_resumed"] == 4


def test_canaries_and_copier_on_the_boards(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    """Order-blind rankers: spread 0, tau about 0, first slot about 1/K; the copier: first slot 1, tau 1."""
    store = ResultStore(tmp_path)
    ctx = RankerContext(mock_dataset, seed=0, options={"oracle_need": "interest"})
    blind = [RandomRanker(ctx), PopularityRanker(ctx), STARRanker(ctx), OracleRanker(ctx)]
    for ranker in [*blind, Copier()]:
        _run(ranker, mock_dataset, store, 3)
    (board,) = build_boards(store, dataset="mock")
    rows = {r.ranker: r for r in board.rows}
    k = mock_dataset.instances("test")[0].k
    for ranker in blind:
        o = rows[ranker.name].order
        assert o is not None and o.permutations == 3 and o.spread == 0.0, ranker.name
        assert abs(o.kendall_tau) < 0.1 and o.first_slot_share < 0.15 and o.chance == pytest.approx(1 / k)
    copier = rows["copier"].order
    assert copier is not None and copier.first_slot_share == 1.0 and copier.kendall_tau == pytest.approx(1.0)
    assert copier.spread is not None and copier.spread > 0
    assert board.card is not None and dict(board.card.fields())["display orders P"] == "3 per instance"
    text = markdown_for([board], "mock")
    line = next(row for row in text.splitlines() if row.startswith("| copier"))
    assert "order spread ↓ | first-slot | τ order" in text and line.endswith("| 100% | +1.00 |")
    doc = json.loads(leaderboard_json([board]))
    run = next(r for r in doc["boards"][0]["runs"] if r["ranker"] == "copier")
    assert run["order"]["first_slot_share"] == 1.0 and run["order"]["permutations"] == 3
    csv_head, *lines = leaderboard_csv([board]).splitlines()
    assert csv_head.endswith("permutations,order_spread,first_slot_share,kendall_tau,chance")
    assert any(row.startswith("mock,interest,test,random,") and ",3,0.0," in row for row in lines)


def test_export_of_a_permuted_run(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    from flexbench.export import ExportPart, export_runs

    store = ResultStore(tmp_path / "results")
    run = _run(Copier(), mock_dataset, store, 2, limit=3)
    (jsonl,) = export_runs(store, [run], tmp_path / "out", parts=(ExportPart.JSONL,))
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(r["instance_id"], r["permutation"]) for r in rows] == [
        (x.instance_id, p) for x in mock_dataset.instances("test")[:3] for p in range(2)]


def test_bert4rec_is_an_order_blind_canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("recbole")
    from baselines.bert4rec import BERT4RecRanker, train_command
    from flexbench.catalog import open_dataset
    from flexbench.trainers import TrainRequest

    monkeypatch.setenv("FLEXBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    tiny = {"epochs": 1, "hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32, "max_seq_length": 12,
            "train_batch_size": 128}
    out = train_command(TrainRequest("bert4rec", "mock", ("interest",), tmp_path / "ckpt", seed=3, options=tiny))
    data = open_dataset("mock")
    store = ResultStore(tmp_path / "results")
    run = _run(BERT4RecRanker(RankerContext(data, options={"checkpoint": str(out)})), data, store, 3)
    o = order_stats(store.load_trials(run.key), seed=0)
    assert o is not None and o.permutations == 3 and o.spread == 0.0 and abs(o.kendall_tau) < 0.1
