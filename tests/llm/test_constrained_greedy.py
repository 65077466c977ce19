"""The cached greedy permutation decoder gives generate()'s greedy constrained outputs, with fewer forwards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from policy_fixtures import TOY_NEED, tiny_policy, toy_instances, toy_tokenizer  # noqa: F401

from flexbench.llm.backends import SamplingParams, TransformersBackend
from flexbench.llm.constrained_greedy import greedy_permutations
from flexbench.llm.prompts import build_prompt


class _Counting(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, **kw):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.model(**kw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_outputs_as_generate_greedy_constrained(toy_tokenizer, seed: int) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = tiny_policy(toy_tokenizer, seed=seed).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)  # a peaked, input-dependent policy, far from ties
    xs = toy_instances(6)
    prompts = [build_prompt(x, TOY_NEED, seed=i) for i, x in enumerate(xs)]
    backend = TransformersBackend(model, toy_tokenizer, batch_size=3, cached_greedy=False)  # generate()
    want = backend.generate([p.text for p in prompts], SamplingParams(max_new_tokens=32, temperature=0.0),
                            candidate_ids=[p.shown_ids for p in prompts])
    counting = _Counting(model)
    got = greedy_permutations(counting, toy_tokenizer, [p.text for p in prompts], [p.shown_ids for p in prompts],
                              backend.eos_token_ids, add_special_tokens=backend.add_special_tokens, batch_size=4)
    assert got == [list(g[0].token_ids) for g in want]
    longest = max(len(t) for t in got)
    assert counting.calls < 2 * longest  # two batches, each fewer forwards than tokens


def test_backend_routes_greedy_constrained_requests_through_the_cached_decoder(toy_tokenizer) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    model = tiny_policy(toy_tokenizer, seed=5).eval()
    xs = toy_instances(3)
    prompts = [build_prompt(x, TOY_NEED, seed=i) for i, x in enumerate(xs)]
    params = SamplingParams(max_new_tokens=32, temperature=0.0)
    texts, shown = [p.text for p in prompts], [p.shown_ids for p in prompts]
    fast = TransformersBackend(model, toy_tokenizer, batch_size=2).generate(texts, params, candidate_ids=shown)
    slow = TransformersBackend(model, toy_tokenizer, batch_size=2, cached_greedy=False).generate(
        texts, params, candidate_ids=shown)
    assert fast == slow and all(g[0].finish_reason == "stop" for g in fast)
