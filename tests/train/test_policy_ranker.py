"""Saved policies load as rankers: clear reason when missing, checkpoint resolution, train_need recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_fixtures import tiny_policy, toy_tokenizer

from flexbench.ranker import RankerContext, RankerUnavailable, build_ranker
from flexbench.train.checkpoint import save_policy
from flexbench.vocabulary import get_need

__all__ = ["toy_tokenizer"]


def _save(root: Path, tag: str, tokenizer, train_need: str) -> Path:  # type: ignore[no-untyped-def]
    out = root / "checkpoints" / "flexrec" / "mock" / tag
    save_policy(out, tiny_policy(tokenizer), tokenizer)
    (out / "run.json").write_text(json.dumps({"method": "flexrec", "label": "flexrec", "dataset": "mock",
                                              "needs": [train_need], "train_need": train_need}))
    return out


def test_missing_checkpoint_is_unavailable_with_the_command_to_run(data_root: Path, mock_dataset) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RankerUnavailable, match=r"no checkpoint at .*flexrec/mock/; run `flexbench train "
                                                r"flexrec --dataset mock --need N`"):
        build_ranker("flexrec", RankerContext(mock_dataset))
    with pytest.raises(RankerUnavailable, match="no checkpoint at /nowhere"):
        build_ranker("flexrec", RankerContext(mock_dataset, options={"checkpoint": "/nowhere"}))


def test_trained_policy_ranks_and_records_its_training_need(data_root: Path, mock_dataset,  # type: ignore[no-untyped-def]
                                                            toy_tokenizer) -> None:
    _save(data_root, "interest", toy_tokenizer, "interest")
    _save(data_root, "all", toy_tokenizer, "all")
    ranker = build_ranker("flexrec", RankerContext(mock_dataset, options={"constrained": True,
                                                                          "max_new_tokens": 8}))
    assert ranker.name == "flexrec" and ranker.train_need is None
    instances = mock_dataset.instances("test", limit=2)
    out = ranker.rank(instances, get_need("interest"))
    assert [r.instance_id for r in out] == [x.instance_id for x in instances]
    for r, x in zip(out, instances, strict=True):
        assert sorted(r.item_ids) == sorted(x.candidate_ids)  # constrained: a permutation
        assert r.parsed and r.raw_output and r.prompt
        assert r.extra["train_need"] == "interest"
    # no novelty checkpoint: the jointly trained policy is used
    assert ranker.checkpoint_for("novelty").name == "all"
    assert ranker.provenance("interest")["train_need"] == "interest"
    assert ranker.provenance("novelty")["train_need"] == "all"
    # train-on-interest, test-on-novelty through the train_need option
    cross = build_ranker("flexrec", RankerContext(mock_dataset, options={"train_need": "interest"}))
    assert cross.checkpoint_for("novelty").name == "interest" and cross.train_need == "interest"
    assert cross.provenance("novelty")["train_need"] == "interest"


def test_eval_records_the_training_need_of_each_test_need(data_root: Path, mock_dataset,  # type: ignore[no-untyped-def]
                                                          toy_tokenizer) -> None:
    from flexbench.results import ResultStore
    from flexbench.suite import EvalRequest, run_eval

    _save(data_root, "interest", toy_tokenizer, "interest")
    _save(data_root, "all", toy_tokenizer, "all")
    store = ResultStore(data_root / "results")
    options = {"constrained": True, "max_new_tokens": 8}
    for need, trained_on in (("interest", "interest"), ("novelty", "all")):
        run = run_eval(EvalRequest("flexrec", "mock", need, limit=1, options=options), store=store,
                       dataset=mock_dataset)
        assert run.provenance["train_need"] == trained_on
        assert run.provenance["checkpoint"].endswith(f"flexrec/mock/{trained_on}")


def test_eval_all_skips_the_needs_without_a_trained_policy(data_root: Path, mock_dataset,  # type: ignore[no-untyped-def]
                                                           toy_tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    from flexbench import ranker as ranker_module
    from flexbench.results import ResultStore
    from flexbench.suite import run_all

    _save(data_root, "interest", toy_tokenizer, "interest")
    table = {"flexrec": ranker_module.REGISTRY["flexrec"]}
    monkeypatch.setattr("flexbench.suite.REGISTRY", table)
    said: list[str] = []
    report = run_all(store=ResultStore(data_root / "results"), datasets=("mock",), llm_limit=1, say=said.append)
    assert not report.failed, report.failed
    assert [r.key.need for r in report.ran] == ["interest"]
    assert {what for what, _ in report.skipped} == {"flexrec on mock/novelty", "flexrec on mock/trend"}
    assert any(line.startswith("skip flexrec on mock/novelty: no checkpoint at") for line in said)
    stored = {run.key.need for run in ResultStore(data_root / "results").load_runs()}
    assert stored == {"interest"}  # nothing stored for the needs without a policy
