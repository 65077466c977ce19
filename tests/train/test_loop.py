"""The RL loop on a tiny model: parameters move, the reward rises, validation is logged and plotted."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from policy_fixtures import TOY_NEED, tiny_policy, toy_instances, toy_labels, toy_tokenizer, toy_trainer

from flexbench.train.curves import CURVE_FILE, METRICS_FILE, read_metrics
from flexbench.train.validation import PolicyValidator
from flexbench.types import Split

__all__ = ["toy_tokenizer"]


def _validator(tokenizer) -> PolicyValidator:  # type: ignore[no-untyped-def]
    valid = toy_instances(3, Split.VALID)
    return PolicyValidator(tokenizer, {TOY_NEED.name: (TOY_NEED, valid, toy_labels(valid))},
                           max_new_tokens=24, constrained=True)


def test_flexrec_learns_the_always_best_candidate(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A real learning signal: the mean sequence reward of the rollouts rises over training.

    Toy task: four candidates, ``c0`` has gain 1, ``c1`` 0.2, the others 0, in
    every instance. SPEC loss settings (clip 0.2, k3 KL 0.01 to a frozen
    reference, entropy 0.005); a high learning rate for a random tiny model.
    """
    model = tiny_policy(toy_tokenizer)
    before = copy.deepcopy(model.state_dict())
    reference = copy.deepcopy(model).eval()
    trainer = toy_trainer(toy_tokenizer, tmp_path, model=model, reference=reference, steps=12, lr=1e-2,
                          validator=_validator(toy_tokenizer), eval_every=6)
    trainer.train(resume=False)
    train = read_metrics(tmp_path / METRICS_FILE, "train")
    rewards = [r["reward_mean"] for r in train]
    assert len(rewards) == 12
    early, late = float(np.mean(rewards[:3])), float(np.mean(rewards[-3:]))
    print("toy rewards per step:", [round(r, 3) for r in rewards])
    assert late > early + 0.1, rewards
    assert all(r["kl"] >= 0 for r in train) and any(r["kl"] > 0 for r in train)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "no parameter moved"
    valid = read_metrics(tmp_path / METRICS_FILE, "valid")
    assert [r["step"] for r in valid] == [0, 6, 12]
    for row in valid:
        assert {"step", "split", "need", "ndcg@5", "ndcg@10", "reward_mean"} <= set(row)
    assert (tmp_path / CURVE_FILE).stat().st_size > 0
    assert (tmp_path / "policy" / "config.json").exists()


def test_ppo_variant_trains_value_head_and_policy(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_policy(toy_tokenizer)
    before = copy.deepcopy(model.state_dict())
    trainer = toy_trainer(toy_tokenizer, tmp_path, method="flexrec-ppo", model=model, steps=2, kl_coef=0.0,
                          mini_batches=2)
    assert trainer.value_head is not None
    trainer.train(resume=False)
    assert trainer.value_head.linear.weight.abs().sum() > 0
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
    rows = read_metrics(tmp_path / METRICS_FILE, "train")
    # two mini-batches: the second update is off-policy, so some tokens may be clipped
    assert all(0 <= r["clip_fraction"] <= 1 for r in rows)


def test_rec_r1_runs_sft_warmup_then_grpo(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trainer = toy_trainer(toy_tokenizer, tmp_path, method="rec-r1", steps=1, sft_warmup_steps=2,
                          sft_lr=1e-3)
    assert trainer.total_steps == 3
    trainer.train(resume=False)
    phases = [r["phase"] for r in read_metrics(tmp_path / METRICS_FILE, "train")]
    assert phases == ["sft", "sft", "rl"]


def test_loop_runs_under_an_explicit_cpu_accelerator(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    trainer = toy_trainer(toy_tokenizer, tmp_path, accelerator=acc, steps=1, kl_coef=0.0)
    trainer.train(resume=False)
    run = read_metrics(tmp_path / METRICS_FILE, "train")
    assert run[0]["tokens"] > 0
    assert json.loads((tmp_path / METRICS_FILE).read_text().splitlines()[0])["step"] == 1


def test_train_policy_end_to_end_then_eval_loads_it(toy_tokenizer, data_root: Path) -> None:  # type: ignore[no-untyped-def]
    """``flexbench train`` wiring on the mock dataset with a tiny local model, then the ranker loads it."""
    from flexbench.catalog import open_dataset
    from flexbench.ranker import RankerContext, build_ranker
    from flexbench.train.checkpoint import save_policy
    from flexbench.train.run import train_policy
    from flexbench.trainers import TrainRequest
    from flexbench.vocabulary import get_need

    base = data_root / "tiny-base"
    save_policy(base, tiny_policy(toy_tokenizer), toy_tokenizer)
    out = data_root / "checkpoints" / "flexrec" / "mock" / "novelty"
    request = TrainRequest(method="flexrec", dataset="mock", needs=("novelty",), out_dir=out,
                           model=str(base / "policy"), seed=0,
                           options={"method": "flexrec", "steps": 1, "group_size": 2, "eval_instances": 1,
                                    "max_new_tokens": 8, "train_instances": 4, "kl_coef": 0.0})
    assert train_policy(request) == out
    run = json.loads((out / "run.json").read_text())
    assert {k: run[k] for k in ("method", "label", "dataset", "needs")} == {
        "method": "flexrec", "label": "flexrec", "dataset": "mock", "needs": ["novelty"]}
    assert [r["step"] for r in read_metrics(out / METRICS_FILE, "valid")] == [0, 1]
    ranker = build_ranker("flexrec", RankerContext(open_dataset("mock"), options={"constrained": True}))
    x = open_dataset("mock").instances("test", limit=1)
    ranking = ranker.rank(x, get_need("novelty"))[0]
    assert sorted(ranking.item_ids) == sorted(x[0].candidate_ids) and ranking.extra["train_need"] == "novelty"
