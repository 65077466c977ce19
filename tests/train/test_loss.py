"""The policy loss: per-token advantages reach the gradient exactly as computed."""

from __future__ import annotations

import math

import pytest
import torch
from policy_fixtures import tiny_llama

from flexbench.train.optim.forward import completion_logits, pack, score_completions
from flexbench.train.optim.loss import k3_kl, masked_sum_mean, policy_loss, token_entropy, token_logprobs

VOCAB = 50


def _rollout() -> tuple[list[int], list[int], torch.Tensor]:
    prompt, completion = [5, 9, 11, 3, 7], [12, 13, 14, 15, 2]
    adv = torch.tensor([[1.5, -0.5, 0.25, 2.0, -1.0]])
    return prompt, completion, adv


def test_logit_gradient_equals_hand_built_expectation() -> None:
    """At ratio 1 without KL/entropy: dL/dz_t = -A_t (onehot(a_t) - softmax(z_t)) / T."""
    model = tiny_llama(VOCAB)
    prompt, completion, adv = _rollout()
    batch = pack([prompt], [completion], pad_id=0)
    logits, _ = completion_logits(model, batch)
    logits.retain_grad()
    logp = token_logprobs(logits, batch.completion)
    out = policy_loss(logp, logp.detach(), adv, batch.completion_mask, kl_coef=0.0, entropy_coef=0.0)
    out.loss.backward()
    t = len(completion)
    onehot = torch.nn.functional.one_hot(batch.completion, VOCAB).float()
    expected = -adv.unsqueeze(-1) * (onehot - torch.softmax(logits.detach(), -1)) / t
    torch.testing.assert_close(logits.grad, expected, rtol=1e-5, atol=1e-7)


def test_parameter_gradient_equals_manual_policy_gradient() -> None:
    """The parameter gradient equals that of -(1/T) sum_t A_t log pi(a_t|s_t), with padding ignored."""
    model = tiny_llama(VOCAB)
    prompt, completion, adv = _rollout()
    # a second, shorter rollout with a longer prompt exercises both paddings
    batch = pack([prompt, [4, 4, 6, 8, 10, 3, 9]], [completion, [20, 21, 2]], pad_id=0)
    adv2 = torch.cat([adv, torch.tensor([[0.7, -0.3, 1.1, 99.0, 99.0]])])
    scores = score_completions(model, batch)
    out = policy_loss(scores.logprobs, scores.logprobs.detach(), adv2, batch.completion_mask)
    out.loss.backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    terms = []
    for i, (p, c) in enumerate(((prompt, completion), ([4, 4, 6, 8, 10, 3, 9], [20, 21, 2]))):
        ids = torch.tensor([p + c])
        logits = model(input_ids=ids).logits[0, len(p) - 1:-1]
        lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
        terms.append((adv2[i, :len(c)] * lp).sum())
    (-(terms[0] + terms[1]) / 8).backward()
    for g, p in zip(got, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-7)


def test_clipping_stops_gradient_beyond_the_trust_region() -> None:
    logp = torch.tensor([[math.log(0.5), math.log(0.5)]], requires_grad=True)
    old = torch.tensor([[math.log(0.3), math.log(0.3)]])  # ratio 5/3 > 1.2
    adv = torch.tensor([[1.0, -1.0]])
    out = policy_loss(logp, old, adv, torch.ones(1, 2), clip_eps=0.2)
    out.loss.backward()
    # positive advantage: clipped (no gradient); negative advantage: unclipped branch is the min
    assert logp.grad[0, 0].item() == 0.0
    assert logp.grad[0, 1].item() == pytest.approx(0.5 * 5 / 3)
    assert out.clip_fraction == 1.0


def test_k3_is_nonnegative_and_zero_at_reference() -> None:
    a = torch.randn(100)
    b = torch.randn(100)
    assert (k3_kl(a, b) >= 0).all()
    assert torch.allclose(k3_kl(a, a), torch.zeros(100))
    # unbiased: E_{x~pi}[k3] = KL(pi||ref) for two categorical distributions
    p = torch.tensor([0.6, 0.3, 0.1])
    r = torch.tensor([0.2, 0.5, 0.3])
    expected = (p * (p / r).log()).sum()
    estimate = (p * k3_kl(p.log(), r.log())).sum()
    torch.testing.assert_close(estimate, expected)


def test_kl_and_entropy_terms_enter_the_loss_with_their_coefficients() -> None:
    logits = torch.randn(2, 3, 7)
    tokens = torch.randint(0, 7, (2, 3))
    logp = token_logprobs(logits, tokens)
    ref = logp + 0.3
    ent = token_entropy(logits)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    zero_adv = torch.zeros(2, 3)
    out = policy_loss(logp, logp, zero_adv, mask, ref_logprobs=ref, kl_coef=0.01, entropy=ent,
                      entropy_coef=0.005)
    expected = masked_sum_mean(0.01 * k3_kl(logp, ref) - 0.005 * ent, mask)
    torch.testing.assert_close(out.loss, expected)
    assert out.kl == pytest.approx(float(masked_sum_mean(k3_kl(logp, ref), mask)), rel=1e-5)


def test_global_denominator_makes_accumulation_match_one_batch() -> None:
    model = tiny_llama(VOCAB)
    prompts = [[3, 4, 5], [6, 7], [8, 9, 10, 11]]
    comps = [[12, 13], [14, 15, 16], [17]]
    adv = [torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 0.5, -1.0]]), torch.tensor([[3.0]])]
    full = pack(prompts, comps, 0)
    adv_full = torch.zeros(3, 3)
    for i, a in enumerate(adv):
        adv_full[i, :a.shape[1]] = a
    s = score_completions(model, full)
    policy_loss(s.logprobs, s.logprobs.detach(), adv_full, full.completion_mask).loss.backward()
    one = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    n_tokens = sum(len(c) for c in comps)
    for p_ids, c_ids, a in zip(prompts, comps, adv, strict=True):
        b = pack([p_ids], [c_ids], 0)
        s = score_completions(model, b)
        policy_loss(s.logprobs, s.logprobs.detach(), a, b.completion_mask, denom=n_tokens).loss.backward()
    for g, p in zip(one, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-7)
