"""Interrupted training resumes from its checkpoint and ends with the same parameters as an uninterrupted run."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from policy_fixtures import tiny_policy, toy_tokenizer, toy_trainer

from flexbench.train.checkpoint import CHECKPOINT, load_checkpoint
from flexbench.train.curves import METRICS_FILE, read_metrics

__all__ = ["toy_tokenizer"]


class _InterruptAt:
    """A validator that presses Ctrl-C after step ``at`` (validation runs before the step's checkpoint)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def __call__(self, policy, step: int) -> list[dict]:  # type: ignore[no-untyped-def]
        if step == self.at:
            raise KeyboardInterrupt
        return []


class _InterruptRollouts:
    """Wraps a rollout sampler and presses Ctrl-C while sampling step ``at`` (mid-step)."""

    def __init__(self, sampler, at: int) -> None:  # type: ignore[no-untyped-def]
        self.sampler, self.at = sampler, at

    def sample(self, tasks, step: int):  # type: ignore[no-untyped-def]
        if step == self.at:
            raise KeyboardInterrupt
        return self.sampler.sample(tasks, step)


@pytest.mark.parametrize(("method", "where"), [("flexrec", "between-steps"), ("flexrec-ppo", "between-steps"),
                                               ("flexrec", "mid-step")])
def test_resume_after_interruption_matches_uninterrupted_run(toy_tokenizer, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             method: str, where: str) -> None:
    steps = 4
    common = {"method": method, "steps": steps, "eval_every": 1, "save_every": 2, "mini_batches": 2}
    base = tiny_policy(toy_tokenizer)

    full_model = copy.deepcopy(base)
    full = toy_trainer(toy_tokenizer, tmp_path / "full", model=full_model, reference=copy.deepcopy(base).eval(),
                       validator=_InterruptAt(-1), **common)
    full.train(resume=False)

    # run 1: Ctrl-C after step 3 (or while sampling step 4) -> the handler checkpoints step 3
    first = toy_trainer(toy_tokenizer, tmp_path / "cut", model=copy.deepcopy(base),
                        reference=copy.deepcopy(base).eval(),
                        validator=_InterruptAt(3 if where == "between-steps" else -1), **common)
    if where == "mid-step":
        first.sampler = _InterruptRollouts(first.sampler, 3)
    with pytest.raises(KeyboardInterrupt):
        first.train(resume=False)
    assert (tmp_path / "cut" / CHECKPOINT).exists()
    # run 2: a fresh process would rebuild the model from the base weights and resume
    resumed_model = copy.deepcopy(base)
    second = toy_trainer(toy_tokenizer, tmp_path / "cut", model=resumed_model,
                         reference=copy.deepcopy(base).eval(), validator=_InterruptAt(-1), **common)
    ran: list[int] = []
    step_fn = second.step
    second.step = lambda: (ran.append(second.progress.step), step_fn())[1]  # type: ignore[method-assign]
    second.train(resume=True)
    assert ran == [3], "the resumed run must continue after the checkpointed step, not restart"

    assert second.progress.step == steps and second.progress.position == full.progress.position
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"
    if method == "flexrec-ppo":
        assert torch.equal(full.value_head.linear.weight, second.value_head.linear.weight)
    rewards_full = [r["reward_mean"] for r in read_metrics(tmp_path / "full" / METRICS_FILE, "train")]
    rewards_cut = [r["reward_mean"] for r in read_metrics(tmp_path / "cut" / METRICS_FILE, "train")]
    assert rewards_cut == rewards_full  # same data order and samples, each step logged once


def test_checkpoint_restores_step_position_and_optimizer(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trainer = toy_trainer(toy_tokenizer, tmp_path, steps=2, save_every=1, kl_coef=0.0)
    trainer.train(resume=False)
    fresh = toy_trainer(toy_tokenizer, tmp_path, steps=2, kl_coef=0.0)
    progress = load_checkpoint(tmp_path, model=fresh.model, optimizer=fresh.optimizer,
                               scheduler=fresh.scheduler)
    assert progress is not None and (progress.step, progress.position) == (2, 4)
    assert fresh.optimizer.state_dict()["state"], "optimizer moments were not restored"
    for a, b in zip(trainer.model.parameters(), fresh.model.parameters(), strict=True):
        assert torch.equal(a, b)
