"""Prefix-shared scoring equals scoring each (prompt, completion) as its own sequence.

Log-probabilities, entropies, hidden states and gradients, in fp32, with several
prompts of different lengths (the unshared layout left-pads them), constrained
supports, LoRA, gradient checkpointing and eager attention; and a training run
reaches the same parameters with sharing on and off.
"""

from __future__ import annotations

import copy

import pytest
import torch
from policy_fixtures import tiny_llama, tiny_policy, toy_tokenizer, toy_trainer  # noqa: F401  (fixture)

from flexbench.train.optim.forward import pack, score_completions
from flexbench.train.optim.loss import policy_loss
from flexbench.train.optim.shared import block_mask, pack_shared, supports_shared_prefix

VOCAB = 60
PROMPTS = [[5, 6, 7, 8, 9, 10, 4]] * 3 + [[11, 12, 13]] * 2 + [[14, 15, 16, 17]]
COMPLETIONS = [[20, 21, 22, 2], [23, 24, 2], [25, 2], [30, 31, 32, 33, 2], [34, 2], [40, 41, 42]]


def _supports() -> list[list[tuple[int, ...]]]:
    """A made-up constraint per step (the sampled token plus two others; some steps forced)."""
    return [[(t,) if k % 3 == 2 else (t, 50, 51) for k, t in enumerate(c)] for c in COMPLETIONS]


def _both(model: torch.nn.Module, supports=None, **kw):  # type: ignore[no-untyped-def]
    a = score_completions(model, pack(PROMPTS, COMPLETIONS, 0, supports), **kw)
    b = score_completions(model, pack_shared(PROMPTS, COMPLETIONS, 0, supports), **kw)
    return a, b, pack(PROMPTS, COMPLETIONS, 0).completion_mask


def _grads(model: torch.nn.Module, batch, adv: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    logp = score_completions(model, batch, entropy=True).logprobs
    loss = policy_loss(logp, logp.detach(), adv, batch.completion_mask, entropy=None).loss
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, params))


@pytest.mark.parametrize("constrained", [False, True])
def test_logprobs_entropy_and_hidden_states_match(constrained: bool) -> None:
    model = tiny_llama(VOCAB, seed=1)
    supports = _supports() if constrained else None
    with torch.no_grad():
        a, b, mask = _both(model, supports, entropy=True, hidden=True)
    assert float(((a.logprobs - b.logprobs) * mask).abs().max()) < 1e-5
    assert float(((a.entropy - b.entropy) * mask).abs().max()) < 1e-5
    assert float(((a.hidden - b.hidden) * mask[..., None]).abs().max()) < 1e-5


def _assert_same_gradients(model: torch.nn.Module, supports=None) -> None:  # type: ignore[no-untyped-def]
    adv = torch.randn(len(PROMPTS), max(len(c) for c in COMPLETIONS), generator=torch.Generator().manual_seed(0))
    ga = _grads(model, pack(PROMPTS, COMPLETIONS, 0, supports), adv)
    gb = _grads(model, pack_shared(PROMPTS, COMPLETIONS, 0, supports), adv)
    assert max(float((x - y).abs().max()) for x, y in zip(ga, gb, strict=True)) < 1e-5
    assert max(float(x.abs().max()) for x in ga) > 1e-4


def test_gradients_match_full_parameters_and_constrained() -> None:
    _assert_same_gradients(tiny_llama(VOCAB, seed=2), _supports())


def test_gradients_match_with_gradient_checkpointing() -> None:
    model = tiny_llama(VOCAB, seed=3)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    model.config.attention_dropout = 0.0
    _assert_same_gradients(model)


def test_gradients_match_with_lora() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(VOCAB, seed=4), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                                 init_lora_weights=False))
    _assert_same_gradients(model, _supports())


def test_eager_attention_takes_an_additive_mask() -> None:
    model = tiny_llama(VOCAB, seed=5)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        a, b, mask = _both(model)
    assert float(((a.logprobs - b.logprobs) * mask).abs().max()) < 1e-5
    model.config._attn_implementation = "flash_attention_2"
    assert not supports_shared_prefix(model)


def test_block_mask_shape() -> None:
    batch = pack_shared(PROMPTS, COMPLETIONS, 0)
    mask = block_mask(batch.segments)
    assert mask.shape == (3, 1, batch.input_ids.shape[1], batch.input_ids.shape[1])
    seg = batch.segments[0]
    first, second = (seg == 0).nonzero()[0, 0], (seg == 1).nonzero()[0, 0]
    assert bool(mask[0, 0, second, 0]) and not bool(mask[0, 0, second, first])  # sees the prompt, not c1
    assert batch.input_ids.shape[1] < sum(len(p) + len(c) for p, c in zip(PROMPTS, COMPLETIONS, strict=True))


def test_training_reaches_the_same_parameters_with_and_without_sharing(toy_tokenizer, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    runs = {}
    start = tiny_policy(toy_tokenizer, seed=7)
    for shared in (False, True):
        model = copy.deepcopy(start)
        trainer = toy_trainer(toy_tokenizer, tmp_path / str(shared), model=model, steps=2, shared_prefix=shared,
                              reference=copy.deepcopy(start).eval())
        assert trainer._share_prefix is shared
        trainer.train(resume=False)
        runs[shared] = [p.detach().clone() for p in model.parameters()]
    assert max(float((a - b).abs().max()) for a, b in zip(runs[False], runs[True], strict=True)) < 1e-5
    assert max(float((a - b).abs().max()) for a, b in zip(runs[True], start.parameters(), strict=True)) > 1e-4
