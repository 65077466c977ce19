"""Harness: oracle = 1, reference rankers, rates, strict mode, interface checks, resume after interruption."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from baselines.reference import CandidateOrderRanker, RandomRanker
from flexbench.harness import RankerOutputError, aggregate_rates, evaluate
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext
from flexbench.results import ResultStore
from flexbench.types import Instance, NeedSpec, Ranking, RunKey
from flexbench.vocabulary import get_need
from needs.oracle import OracleRanker


def ctx(dataset: PreparedDataset, **options: object) -> RankerContext:
    return RankerContext(dataset, seed=0, options=options)


@pytest.mark.parametrize("need", ["interest", "novelty", "trend"])
def test_oracle_of_a_need_scores_one_on_that_need(mock_dataset: PreparedDataset, need: str) -> None:
    oracle = OracleRanker(ctx(mock_dataset, oracle_need=need))
    result = evaluate(oracle, mock_dataset.instances(), mock_dataset.labels(need), get_need(need))
    assert result.n_instances == 120
    assert result.metrics["ndcg@30"] == pytest.approx(1.0, abs=1e-12)
    assert result.metrics["ndcg@5"] == pytest.approx(1.0, abs=1e-12)
    assert result.metrics["recall@5"] == pytest.approx(1.0)
    assert result.rates == {"invalid_rate": 0.0, "duplicate_rate": 0.0, "parse_failure_rate": 0.0,
                            "pad_rate": 0.0}


def test_reference_rankers_are_deterministic_permutations(mock_dataset: PreparedDataset) -> None:
    xs = mock_dataset.instances("test")
    need = get_need("interest")
    first = RandomRanker(ctx(mock_dataset)).rank(xs, need)
    assert first == RandomRanker(ctx(mock_dataset)).rank(xs, need)
    assert all(sorted(r.item_ids) == sorted(x.candidate_ids) for r, x in zip(first, xs, strict=True))
    assert any(r.item_ids != x.candidate_ids for r, x in zip(first, xs, strict=True))
    order = CandidateOrderRanker(ctx(mock_dataset)).rank(xs, need)
    assert [r.item_ids for r in order] == [x.candidate_ids for x in xs]


class Scripted:
    """Fixed outputs by instance number mod 3: short with invalid + duplicate, unparsed, reversed."""

    name = "scripted"

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        out = []
        for x in instances:
            c, n = x.candidate_ids, int(x.instance_id[-3:])
            if n % 3 == 0:
                out.append(Ranking(x.instance_id, (c[0], "nope", c[0], c[1]), raw_output="1. ..."))
            elif n % 3 == 1:
                out.append(Ranking(x.instance_id, (), raw_output="I cannot rank these.", parsed=False))
            else:
                out.append(Ranking(x.instance_id, tuple(reversed(c)), raw_output="..."))
        return out


def test_rates_and_strict_mode(mock_dataset: PreparedDataset) -> None:
    xs = mock_dataset.instances("test")[:9]  # mock-009, -019, ... -089: numbers mod 3 cycle 0, 1, 2
    labels = mock_dataset.labels("interest")
    lenient = evaluate(Scripted(), xs, labels, get_need("interest"), batch_size=4)
    strict = evaluate(Scripted(), xs, labels, get_need("interest"), strict=True, batch_size=4)
    emitted = 3 * 4 + 3 * 30  # three 4-ID outputs, three full reversals, three empty
    assert lenient.rates["invalid_rate"] == pytest.approx(3 / emitted)
    assert lenient.rates["duplicate_rate"] == pytest.approx(3 / emitted)
    assert lenient.rates["parse_failure_rate"] == pytest.approx(3 / 9)
    assert lenient.rates["pad_rate"] == pytest.approx((3 * 28 + 3 * 30) / (9 * 30))
    assert strict.rates == lenient.rates
    # strict zeroes exactly the three unparsed instances; the others score the same
    for name, value in lenient.metrics.items():
        assert strict.metrics[name] <= value
    assert strict.metrics["ndcg@30"] < lenient.metrics["ndcg@30"]


def test_aggregate_rates_of_nothing_are_zero() -> None:
    assert set(aggregate_rates([]).values()) == {0.0}


class Broken:
    name = "broken"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        out = [Ranking(x.instance_id, x.candidate_ids) for x in instances]
        return out[:-1] if self.mode == "short" else list(reversed(out))


@pytest.mark.parametrize(("mode", "message"), [("short", "returned 3 rankings for a batch of 4"),
                                                ("order", "expected .* \\(input order\\)")])
def test_interface_violations_are_clear_errors(mock_dataset: PreparedDataset, mode: str, message: str) -> None:
    xs = mock_dataset.instances("test")[:4]
    with pytest.raises(RankerOutputError, match=message):
        evaluate(Broken(mode), xs, mock_dataset.labels("interest"), get_need("interest"))


class Interrupting(RandomRanker):
    """Random ranker that raises KeyboardInterrupt on its ``fail_at``-th call."""

    def __init__(self, c: RankerContext, fail_at: int) -> None:
        super().__init__(c)
        self.calls, self.fail_at = 0, fail_at

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return super().rank(instances, need)


def test_interrupted_run_resumes_to_the_same_aggregate(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    xs, labels, need = mock_dataset.instances("train"), mock_dataset.labels("novelty"), get_need("novelty")
    key = RunKey("random", "mock", "novelty", "train")
    prov = {"data_fingerprint": mock_dataset.fingerprint}
    whole = evaluate(RandomRanker(ctx(mock_dataset)), xs, labels, need, key=key, batch_size=8,
                     store=ResultStore(tmp_path / "a"), provenance=prov)
    store = ResultStore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        evaluate(Interrupting(ctx(mock_dataset), 5), xs, labels, need, key=key, batch_size=8, store=store,
                 provenance=prov)
    partial = store.load_run(key)
    assert partial is not None and not partial.complete and len(store.load_records(key)) == 32
    resumed = evaluate(RandomRanker(ctx(mock_dataset)), xs, labels, need, key=key, batch_size=8, store=store,
                       provenance=prov)
    assert resumed.provenance["n_resumed"] == 32
    assert (resumed.metrics, resumed.rates, resumed.n_instances) == (whole.metrics, whole.rates, whole.n_instances)
    ids = [line.split('"instance_id": "')[1].split('"')[0] for line in store.run_paths(key)[0].read_text().splitlines()]
    assert len(ids) == len(set(ids)) == len(xs)


def test_limit_is_recorded(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    xs = mock_dataset.instances("test")
    result = evaluate(CandidateOrderRanker(ctx(mock_dataset)), xs, mock_dataset.labels("trend"),
                      get_need("trend"), limit=5, store=ResultStore(tmp_path))
    assert result.n_instances == 5 and result.complete
    assert result.provenance["limit"] == 5 and result.provenance["n_available"] == len(xs)
    assert result.provenance["config"] == {"seed": 0, "strict": False}
