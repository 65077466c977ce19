"""Rank-GRPO as its public code does it (Zhu et al. 2025, github.com/yaochenzhu/Rank-GRPO).

Rank-level rewards over the emitted list only, per-rank advantages over the G rollouts
(Bessel's std, eps 1e-4), no sequence-level credit on other tokens, and the rank-level
importance ratio: the geometric mean of an entry's token ratios, clipped as one unit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_fixtures import TOY_IDS, ToyGains, toy_instances, toy_tokenizer

from flexbench.llm.labels import format_entry, label_map
from flexbench.llm.parsing import parse_ranking
from flexbench.metrics import discounts
from flexbench.train.credit.assign import group_credit, reward_row
from flexbench.train.credit.grpo import rank_grpo_advantages
from flexbench.train.methods import get_method
from flexbench.train.optim.loss import group_log_ratio, pad_groups, policy_loss

__all__ = ["toy_tokenizer"]


def _rows(texts: list[str]) -> tuple[list, np.ndarray]:
    gains, var = ToyGains().candidate_gains(toy_instances(1)[0], "interest")
    parsed = [parse_ranking(t, TOY_IDS) for t in texts]
    return [reward_row(p, TOY_IDS, gains, var, np.random.default_rng(i)) for i, p in enumerate(parsed)], gains


def _answer(order: list[str], extra: str = "") -> str:
    labels = label_map(TOY_IDS)
    return "".join(format_entry(labels[c]) for c in order) + extra


def test_rank_rewards_see_the_list_only_and_invalid_ranks_keep_their_reward_to_go() -> None:
    """A short list gets no credit for the candidates it left out; an invalid rank is a rank like any other."""
    texts = [_answer(["c1", "c0"]), _answer(["c0"], "[99]\n") + _answer(["c1"]), _answer(["c3", "c2", "c1", "c0"])]
    rows, gains = _rows(texts)
    credit = group_credit(rows, gains, get_method("rank-grpo"))
    g = {c: v for c, v in zip(TOY_IDS, gains, strict=True)}
    d = discounts(4)
    idcg = float(np.sort(gains)[::-1] @ d)
    # reward-to-go over the emitted entries only (the published rewards are 0 after the list)
    r = np.array([[g["c1"] * d[0] + g["c0"] * d[1], g["c0"] * d[1], 0.0, 0.0],
                  [g["c0"] * d[0] + g["c1"] * d[2], g["c1"] * d[2], g["c1"] * d[2], 0.0],
                  [g["c3"] * d[0] + g["c2"] * d[1] + g["c1"] * d[2] + g["c0"] * d[3],
                   g["c2"] * d[1] + g["c1"] * d[2] + g["c0"] * d[3], g["c1"] * d[2] + g["c0"] * d[3], g["c0"] * d[3]]]) / idcg
    present = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    table = rank_grpo_advantages(r, present)
    for i, n in enumerate((2, 3, 4)):
        np.testing.assert_allclose(credit.entry_adv[i], table[i, :n], atol=1e-12)
    zeroed = r.copy()
    zeroed[1, 1] = 0.0  # what zeroing the invalid entry's reward would give instead
    assert credit.entry_adv[1][1] > rank_grpo_advantages(zeroed, present)[1, 1]
    np.testing.assert_array_equal(credit.seq_adv, 0.0)      # no sequence-level credit on other tokens
    assert credit.entry_adv[1][0] > 0 > credit.entry_adv[2][0]


def test_group_log_ratio_is_the_mean_log_ratio_of_each_entry() -> None:
    log_ratio = torch.tensor([[0.2, 0.4, -0.1, 0.3, 0.5], [0.1, -0.3, 0.0, 0.0, 0.0]])
    groups = torch.tensor([[0, 0, -1, 1, 1], [0, 0, 1, -1, -1]])
    mask = torch.tensor([[1.0, 1, 1, 1, 0], [1, 1, 1, 0, 0]])  # a masked token does not enter its entry's mean
    out = group_log_ratio(log_ratio, groups, mask)
    expected = torch.tensor([[0.3, 0.3, -0.1, 0.3, 0.3], [-0.1, -0.1, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(pad_groups([[0, 1], [0]], 3), torch.tensor([[0, 1, -1], [0, -1, -1]]))
    with pytest.raises(ValueError, match="ratio groups"):
        group_log_ratio(log_ratio, groups[:, :3], mask)


def _loss_and_grad(logits: torch.Tensor, tokens: torch.Tensor, old: torch.Tensor, adv: torch.Tensor,
                   mask: torch.Tensor, groups: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    z = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(z, -1).gather(-1, tokens[..., None])[..., 0]
    out = policy_loss(logp, old, adv, mask, clip_eps=0.2, ratio_groups=groups)
    out.loss.backward()
    return out.loss.detach(), z.grad


def test_rank_ratio_equals_the_token_ratio_on_policy() -> None:
    """One on-policy update (ratio 1): Rank-GRPO's rank-level ratio gives the per-token gradient."""
    torch.manual_seed(0)
    logits, tokens = torch.randn(2, 6, 7), torch.randint(0, 7, (2, 6))
    adv = torch.tensor([[1.0, 1.0, 0.0, -0.5, -0.5, 0.0], [0.3, 0.3, 0.3, 2.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0] * 6, [1.0] * 5 + [0.0]])
    groups = torch.tensor([[0, 0, -1, 1, 1, -1], [0, 0, 0, 1, -1, -1]])
    old = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]
    loss_tok, grad_tok = _loss_and_grad(logits, tokens, old, adv, mask, None)
    loss_rank, grad_rank = _loss_and_grad(logits, tokens, old, adv, mask, groups)
    torch.testing.assert_close(loss_rank, loss_tok)
    torch.testing.assert_close(grad_rank, grad_tok)


def test_rank_ratio_is_clipped_as_one_unit_like_the_published_loss() -> None:
    """Off-policy: the entry's geometric-mean ratio is clipped, not each token's ratio."""
    logp = torch.log(torch.tensor([[0.8, 0.2, 0.5]]))
    old = torch.log(torch.tensor([[0.5, 0.25, 0.5]]))   # token ratios 1.6 and 0.8: geometric mean 1.13
    adv, mask, groups = torch.tensor([[1.0, 1.0, 1.0]]), torch.ones(1, 3), torch.tensor([[0, 0, -1]])
    out = policy_loss(logp, old, adv, mask, clip_eps=0.2, ratio_groups=groups)
    rho = torch.exp((logp - old)[0, :2].mean())
    # the public code: coef_1 = exp(mean log ratio), coef_2 = clamp(coef_1), loss = -min(coef_1 A, coef_2 A)
    published = -(2 * torch.minimum(rho, rho.clamp(0.8, 1.2)) + 1.0) / 3
    torch.testing.assert_close(torch.tensor(out.policy), published)
    token = policy_loss(logp, old, adv, mask, clip_eps=0.2)
    assert token.clip_fraction == pytest.approx(2 / 3) and out.clip_fraction == pytest.approx(0.0)


def test_loop_trains_rank_grpo_with_its_rank_ratio(toy_tokenizer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rollouts carry each token's entry; two mini-batches make the second update off-policy (grouped ratio).

    Also the loop's KL switch: a reference model with ``kl_coef = 0`` is not scored and not used.
    """
    import copy

    from policy_fixtures import tiny_policy, toy_trainer

    from flexbench.train.curves import METRICS_FILE, read_metrics

    model = tiny_policy(toy_tokenizer)
    trainer = toy_trainer(toy_tokenizer, tmp_path, method="rank-grpo", model=model, steps=1, mini_batches=2,
                          kl_coef=0.0, reference=copy.deepcopy(model).eval())
    rollouts = trainer.sampler.sample(trainer.tasks.tasks(0, 2), 0)
    for r in rollouts:
        assert len(r.segments) == len(r.completion_ids)
        assert sorted(set(r.segments) - {-1}) == list(range(r.n_entries))
    trainer.train(resume=False)
    rows = read_metrics(tmp_path / METRICS_FILE, "train")
    assert rows[0]["kl"] == 0.0 and 0.0 <= rows[0]["clip_fraction"] <= 1.0
