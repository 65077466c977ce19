"""Evaluation of a trained checkpoint uses the token cap training validated with, and picks its engine.

Issue 25, finding 7: reason-mode validation generated 1,024 tokens while
evaluation stopped at 256, cutting outputs before ``Final ranking:``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_fixtures import tiny_policy, toy_tokenizer

from flexbench.errors import FlexBenchError
from flexbench.ranker import RankerContext, build_ranker
from flexbench.train.checkpoint import save_policy
from flexbench.train.config import TrainConfig
from flexbench.train.policy_ranker import eval_engine, token_cap
from flexbench.vocabulary import get_need

__all__ = ["toy_tokenizer"]


@pytest.mark.parametrize(("options", "cap"), [({"prompt_mode": "reason", "max_new_tokens": 1024, "constrained": False}, 1024),
                                              ({"prompt_mode": "ids", "max_new_tokens": 160}, 160),
                                              ({"max_new_tokens": 1024, "eval_max_new_tokens": 300}, 300)])
def test_validation_and_evaluation_caps_agree(options: dict, cap: int) -> None:
    cfg = TrainConfig(model="tiny", **options)
    assert token_cap(cfg.to_dict()) == cap
    assert token_cap({"prompt_mode": "reason"}) == 1024 and token_cap({}) == 256  # runs without a cap recorded


def test_trained_checkpoint_is_evaluated_with_its_runs_cap(data_root: Path, mock_dataset, toy_tokenizer,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = data_root / "checkpoints" / "flexrec" / "mock" / "interest"
    save_policy(out, tiny_policy(toy_tokenizer), toy_tokenizer)
    cfg = TrainConfig(model="tiny", prompt_mode="reason", max_new_tokens=1024, constrained=False)
    (out / "run.json").write_text(json.dumps({"method": "flexrec", "dataset": "mock", "needs": ["interest"],
                                              "train_need": "interest", "config": cfg.to_dict()}))
    seen: list[int] = []
    from flexbench.train import policy_ranker

    real = policy_ranker.PolicyRanker.rank

    def spy(self, instances, need):  # type: ignore[no-untyped-def]
        seen.append(self.max_new_tokens)
        self.max_new_tokens = 4  # the cap is what is checked; keep the tiny model's generation short
        return real(self, instances, need)

    monkeypatch.setattr(policy_ranker.PolicyRanker, "rank", spy)
    ranker = build_ranker("flexrec", RankerContext(mock_dataset))
    ranker.rank(mock_dataset.instances("test", limit=1), get_need("interest"))
    assert seen == [1024]
    explicit = build_ranker("flexrec", RankerContext(mock_dataset, options={"max_new_tokens": 64}))
    explicit.rank(mock_dataset.instances("test", limit=1), get_need("interest"))
    assert seen == [1024, 64]


def test_eval_engine_choice() -> None:
    assert eval_engine("auto", constrained=True) == "transformers"
    assert eval_engine("auto", constrained=False) == "transformers"  # no vLLM / no GPU here
    assert eval_engine("vllm", constrained=False) == "vllm"
    with pytest.raises(FlexBenchError, match="constrained"):
        eval_engine("vllm", constrained=True)
    with pytest.raises(FlexBenchError, match="choose one of"):
        eval_engine("fast", constrained=False)
