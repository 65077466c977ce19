"""Constrained rollouts are scored under the distribution that sampled them (SPEC 6).

The reference quantities are computed independently of the trainer's scoring
path: the probability of a permutation comes from the raw logits passed through
the sampler's own :class:`~flexbench.llm.constrained.PermutationLogitsProcessor`,
and expectations are exact sums over all ``3! = 6`` permutations of ``K = 3``
candidates. The trainer's path is ``support_of`` -> ``pack`` ->
``score_completions`` -> ``policy_loss``, exactly as the loop runs it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from policy_fixtures import TOY_NEED, tiny_policy, toy_tokenizer  # noqa: F401  (fixture)

from flexbench.llm.constrained import PermutationLogitsProcessor, support_of
from flexbench.llm.labels import format_entry, label_map
from flexbench.llm.prompts import build_prompt
from flexbench.train.credit import rewards as rw
from flexbench.train.optim.forward import completion_logits, encode_prompt, pack, score_completions
from flexbench.train.optim.loss import policy_loss, token_logprobs
from flexbench.types import Candidate, HistoryItem, Instance, Split

IDS = ("c0", "c1", "c2")
GAINS = {"c0": 1.0, "c1": 0.2, "c2": 0.0}


@pytest.fixture(scope="module")
def setting(toy_tokenizer):  # type: ignore[no-untyped-def]  # noqa: F811
    instance = Instance("enum-0", "mock", Split.TRAIN, tuple(Candidate(c, f"video {c}") for c in IDS),
                        user_id="u0", history=(HistoryItem("h0", "clip 0", 1.0, 0),))
    prompt = build_prompt(instance, TOY_NEED, seed=0)
    labels = label_map(prompt.shown_ids)
    eos = [toy_tokenizer.eos_token_id]
    perms = list(itertools.permutations(IDS))
    completions = [[t for c in y for t in toy_tokenizer.encode(format_entry(labels[c]), add_special_tokens=False)]
                   + eos for y in perms]
    return {"prompt_ids": encode_prompt(toy_tokenizer, prompt.text), "shown": prompt.shown_ids, "eos": eos,
            "perms": perms, "completions": completions, "tok": toy_tokenizer}


def _model(tokenizer, seed: int = 3) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    model = tiny_policy(tokenizer, seed=seed)
    with torch.no_grad():  # larger logits than the init's: a policy far from uniform over the labels
        model.lm_head.weight.mul_(40.0)
    return model


def _sampler_logprob(model, s, completion) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """log p(completion) under the sampler: raw logits through the sampler's logits processor."""
    p = len(s["prompt_ids"])
    ids = torch.tensor([s["prompt_ids"] + completion])
    logits = model(input_ids=ids).logits[0, p - 1:-1]
    proc = PermutationLogitsProcessor(s["tok"], [s["shown"]], p, s["eos"])
    total = torch.zeros(())
    for t, tok in enumerate(completion):
        masked = proc(ids[:, :p + t], logits[t:t + 1])
        total = total + torch.log_softmax(masked, -1)[0, tok]
    return total


def _reward(y: tuple[str, ...]) -> float:
    g = np.array([[GAINS[c] for c in y]])
    return float(rw.ndcg(g, rw.ideal_dcg(g), None)[0])


def _item_rewards(y: tuple[str, ...]) -> np.ndarray:
    g = np.array([[GAINS[c] for c in y]])
    return rw.causal_swap_rewards(g, rw.ideal_dcg(g), None)[0]


def _entry_of_tokens(s, y) -> list[int]:  # type: ignore[no-untyped-def]
    """Entry index (rank) of each completion token of permutation ``y``; -1 for EOS."""
    labels = label_map(s["shown"])
    out = []
    for k, c in enumerate(y):
        out += [k] * len(s["tok"].encode(format_entry(labels[c]), add_special_tokens=False))
    return out + [-1]


def _trainer_gradient(model, s, advantages) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    """sum_y p(y) grad L(y) with the loop's scoring; ``advantages[i]`` per token of permutation i."""
    supports = [support_of(s["tok"], s["shown"], c, s["eos"]) for c in s["completions"]]
    batch = pack([s["prompt_ids"]] * len(s["perms"]), s["completions"], s["tok"].pad_token_id, supports)
    with torch.no_grad():
        probs = torch.stack([_sampler_logprob(model, s, c).exp() for c in s["completions"]])
    logp = score_completions(model, batch).logprobs
    width = batch.completion.shape[1]
    adv = torch.zeros(len(s["perms"]), width)
    for i, a in enumerate(advantages):
        adv[i, :len(a)] = torch.as_tensor(a, dtype=torch.float32)
    # policy_loss is a token mean over the batch; weight each rollout by its probability instead
    per_token = policy_loss(logp, logp.detach(), adv * probs[:, None] * len(s["perms"]),
                            batch.completion_mask, denom=len(s["perms"]))
    params = [p for p in model.parameters()]
    return list(torch.autograd.grad(per_token.loss, params, allow_unused=True))


def _close(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(float((g - w).abs().max()) for g, w in zip(got, want, strict=True) if w is not None)


def test_support_matches_the_sampler_and_scores_a_permutation_as_the_sampler_drew_it(setting) -> None:  # type: ignore[no-untyped-def]
    s = setting
    model = _model(s["tok"])
    supports = [support_of(s["tok"], s["shown"], c, s["eos"]) for c in s["completions"]]
    batch = pack([s["prompt_ids"]] * 6, s["completions"], s["tok"].pad_token_id, supports)
    with torch.no_grad():
        logp = score_completions(model, batch).logprobs.sum(-1)
        want = torch.stack([_sampler_logprob(model, s, c) for c in s["completions"]])
    torch.testing.assert_close(logp, want, rtol=0, atol=1e-5)
    assert float(want.exp().sum()) == pytest.approx(1.0, abs=1e-5)  # the 6 permutations are the whole support


def test_sequence_grpo_expected_gradient_equals_the_exact_gradient_of_expected_reward(setting) -> None:  # type: ignore[no-untyped-def]
    s = setting
    model = _model(s["tok"])
    rewards = [_reward(y) for y in s["perms"]]
    logps = [_sampler_logprob(model, s, c) for c in s["completions"]]
    expected = sum(lp.exp() * r for lp, r in zip(logps, rewards, strict=True))
    exact = torch.autograd.grad(-expected, list(model.parameters()), allow_unused=True)  # the loss descends
    baseline = float(expected.detach())  # any constant baseline leaves the expectation unchanged
    adv = [[r - baseline] * len(c) for r, c in zip(rewards, s["completions"], strict=True)]
    got = _trainer_gradient(model, s, adv)
    assert _close(got, list(exact)) < 1e-6
    assert max(float(g.abs().max()) for g in exact if g is not None) > 1e-3  # not trivially zero


def test_item_advantage_expected_gradient_equals_the_per_decision_policy_gradient(setting) -> None:  # type: ignore[no-untyped-def]
    """FlexRec: entry k's tokens carry r_k; the expectation is sum_k sum_prefix P(prefix) grad q(v|prefix) E[r_k|.]."""
    s = setting
    model = _model(s["tok"])
    perms, comps = s["perms"], s["completions"]
    item_r = {y: _item_rewards(y) for y in perms}
    with torch.no_grad():
        p = {y: float(_sampler_logprob(model, s, c).exp()) for y, c in zip(perms, comps, strict=True)}
    # exact: J = sum_k sum_{y<=k} sg(P(y<k)) q(y_k | y<k) sg(E[r_k | y<=k]) (q from the sampler's processor)
    tok, labels = s["tok"], label_map(s["shown"])
    objective = torch.zeros(())
    for k in range(len(IDS)):
        for prefix in {y[:k + 1] for y in perms}:
            inside = [y for y in perms if y[:k + 1] == prefix]
            mass = sum(p[y] for y in inside)
            cond_r = sum(p[y] * item_r[y][k] for y in inside) / mass
            before = sum(p[y] for y in perms if y[:k] == prefix[:k])
            head = [t for c in prefix for t in tok.encode(format_entry(labels[c]), add_special_tokens=False)]
            lead = [t for c in prefix[:k] for t in tok.encode(format_entry(labels[c]), add_special_tokens=False)]
            q = (_sampler_logprob(model, s, head) - _sampler_logprob(model, s, lead)).exp()
            objective = objective + before * q * cond_r
    exact = torch.autograd.grad(-objective, list(model.parameters()), allow_unused=True)
    adv = []
    for y in perms:
        entries = _entry_of_tokens(s, y)
        adv.append([float(item_r[y][m]) if m >= 0 else 0.0 for m in entries])
    got = _trainer_gradient(model, s, adv)
    assert _close(got, list(exact)) < 1e-6


def test_forced_tokens_get_exactly_zero_gradient_and_log_prob(setting) -> None:  # type: ignore[no-untyped-def]
    s = setting
    model = _model(s["tok"])
    comps = s["completions"]
    supports = [support_of(s["tok"], s["shown"], c, s["eos"]) for c in comps]
    batch = pack([s["prompt_ids"]] * len(comps), comps, s["tok"].pad_token_id, supports)
    logits, _ = completion_logits(model, batch)
    logits.retain_grad()
    logp = token_logprobs(logits, batch.completion, batch.support, batch.support_mask)
    adv = torch.randn(logp.shape)
    policy_loss(logp, logp.detach(), adv, batch.completion_mask, kl_coef=0.0).loss.backward()
    forced = batch.support_mask.sum(-1) == 1
    assert bool(forced.any()) and bool((~forced & (batch.completion_mask > 0)).any())
    assert torch.equal(logp[forced], torch.zeros_like(logp[forced]))
    assert torch.equal(logits.grad[forced], torch.zeros_like(logits.grad[forced]))
    # the last label and EOS are always forced; the first label never is (3 choices)
    for steps in supports:
        assert len(steps[-1]) == 1 and max(len(a) for a in steps) == 3


def test_zero_sum_sequence_advantage_moves_a_uniform_policy_only_under_the_masked_distribution(setting) -> None:  # type: ignore[no-untyped-def]
    """Prefix-independent logits z (uniform start): full-vocabulary scoring cancels, masked does not."""
    s = setting
    comps = s["completions"]
    supports = [support_of(s["tok"], s["shown"], c, s["eos"]) for c in comps]
    batch = pack([s["prompt_ids"]] * 6, comps, s["tok"].pad_token_id, supports)
    r = torch.tensor([_reward(y) for y in s["perms"]])
    adv = ((r - r.mean()) / r.std(unbiased=False))[:, None].expand(-1, batch.completion.shape[1])
    vocab = len(s["tok"])
    norms = {}
    for name, (sup, mask) in {"full": (None, None), "masked": (batch.support, batch.support_mask)}.items():
        z = torch.zeros(vocab, requires_grad=True)  # every permutation has probability 1/6 under the mask
        logits = z.expand(6, batch.completion.shape[1], vocab)
        logp = token_logprobs(logits, batch.completion, sup, mask)
        loss = policy_loss(logp, logp.detach(), adv, batch.completion_mask).loss
        norms[name] = float(torch.autograd.grad(loss, z)[0].norm())
    assert norms["full"] < 1e-5  # float32 rounding only; the defect: every permutation has the same full-vocabulary gradient
    assert norms["masked"] > 1e-2
