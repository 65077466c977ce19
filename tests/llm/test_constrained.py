"""Constrained decoding: every output is a valid permutation of the candidates."""

from __future__ import annotations

import pytest

from flexbench.llm.backends.base import SamplingParams
from flexbench.llm.backends.transformers_backend import TransformersBackend
from flexbench.llm.constrained import LabelTrie
from flexbench.llm.labels import format_entry
from flexbench.llm.models import tiny_causal_lm
from flexbench.llm.parsing import parse_ranking
from flexbench.llm.prompts import build_prompt
from flexbench.types import Instance
from flexbench.vocabulary import NOVELTY


def test_trie_allows_remaining_labels_then_only_eos(smollm2_tokenizer) -> None:
    tok = smollm2_tokenizer
    labels = [str(i) for i in range(1, 13)]
    trie = LabelTrie(tok, labels)
    eos = frozenset({tok.eos_token_id})
    first = set(trie.allowed([], eos))
    assert first == {tok.encode(format_entry(label), add_special_tokens=False)[0] for label in labels}
    assert tok.eos_token_id not in first
    done: list[int] = []
    for label in labels[:-1]:
        done += tok.encode(format_entry(label), add_special_tokens=False)
    last = tok.encode(format_entry(labels[-1]), add_special_tokens=False)
    # only the missing label can follow, token by token; EOS never before the end
    for i, token in enumerate(last):
        assert trie.allowed(done + last[:i], eos) == [token]
    assert trie.allowed(done + last, eos) == [tok.eos_token_id]
    assert trie.max_length() == len(done) + len(last)


def _check_permutations(backend: TransformersBackend, instances: list[Instance], params: SamplingParams,
                        tokenizer) -> None:
    prompts = [build_prompt(x, NOVELTY, seed=1, tokenizer=tokenizer).text for x in instances]
    outputs = backend.generate(prompts, params, candidate_ids=[x.candidate_ids for x in instances])
    assert [len(o) for o in outputs] == [params.n] * len(instances)
    for x, gens in zip(instances, outputs, strict=True):
        for g in gens:
            result = parse_ranking(g.text, x.candidate_ids)
            assert result.parsed and result.n_invalid == 0 and result.n_duplicate == 0, g.text
            assert sorted(result.item_ids) == sorted(x.candidate_ids)
            assert g.finish_reason == "stop"


@pytest.mark.parametrize("params", [SamplingParams(max_new_tokens=8),
                                    SamplingParams(max_new_tokens=8, temperature=1.5, n=2, seed=3)],
                         ids=["greedy", "sampled"])
def test_tiny_model_smollm2_tokenizer_always_emits_a_permutation(
        tiny_smol_model, smollm2_tokenizer, mock_instances: list[Instance], params: SamplingParams) -> None:
    backend = TransformersBackend(tiny_smol_model, smollm2_tokenizer, batch_size=3)
    _check_permutations(backend, mock_instances[: 6 if params.greedy else 3], params, smollm2_tokenizer)


def test_tiny_model_wordpiece_tokenizer_always_emits_a_permutation(
        minilm_tokenizer, mock_instances: list[Instance]) -> None:
    model = tiny_causal_lm(minilm_tokenizer, seed=1)
    backend = TransformersBackend(model, minilm_tokenizer, batch_size=2)
    _check_permutations(backend, mock_instances[:3], SamplingParams(temperature=1.0, n=2), minilm_tokenizer)
