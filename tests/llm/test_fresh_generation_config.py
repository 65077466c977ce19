"""HF ``generate`` samples from the trainer's distribution, whatever the checkpoint's ``generation_config`` says.

A checkpoint such as Qwen2.5-Instruct ships ``repetition_penalty``, ``top_k`` and
``top_p`` in its ``generation_config.json``; the transformers backend must not
inherit them (issue 25, finding 2).
"""

from __future__ import annotations

import copy

import torch
from transformers import GenerationConfig

from flexbench.llm.backends import SamplingParams
from flexbench.llm.backends.transformers_backend import TransformersBackend

PROMPT = "<|im_start|>user\nRank [1] and [2].<|im_end|>\n<|im_start|>assistant\n"


def _penalised(model):  # type: ignore[no-untyped-def]
    """A copy of ``model`` whose checkpoint config asks for a strong repetition penalty and top-k/top-p."""
    m = copy.deepcopy(model)
    m.generation_config = GenerationConfig(repetition_penalty=3.0, top_k=2, top_p=0.5, no_repeat_ngram_size=2,
                                           eos_token_id=model.generation_config.eos_token_id,
                                           pad_token_id=model.generation_config.pad_token_id)
    return m


def _manual_greedy(model, ids: list[int], steps: int, eos: set[int]) -> list[int]:  # type: ignore[no-untyped-def]
    """Argmax decoding with plain forwards: the unpenalised greedy continuation."""
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            out.append(int(logits.argmax()))
            if out[-1] in eos:
                break
    return out


def _prompt_holding_its_greedy_token(model, ids: list[int]) -> list[int]:  # type: ignore[no-untyped-def]
    """Prepend greedy tokens until the prompt already holds its own greedy next token (a repetition penalty
    then lowers the top logit, so penalised and plain greedy decoding part at the first token)."""
    for _ in range(20):
        nxt = _manual_greedy(model, ids, 1, set())[0]
        if nxt in ids:
            return ids
        ids = [nxt] + ids
    raise AssertionError("no prompt found that repeats its greedy token")


def test_greedy_ignores_the_checkpoints_repetition_penalty(tiny_smol_model, smollm2_tokenizer) -> None:
    model = _penalised(tiny_smol_model)
    backend = TransformersBackend(model, smollm2_tokenizer, batch_size=1)
    ids = _prompt_holding_its_greedy_token(model, list(smollm2_tokenizer(PROMPT, add_special_tokens=False)
                                                       ["input_ids"]))
    prompt = smollm2_tokenizer.decode(ids)
    assert list(smollm2_tokenizer(prompt, add_special_tokens=False)["input_ids"]) == ids
    got = backend.generate([prompt], SamplingParams(max_new_tokens=12))[0][0].token_ids
    expected = _manual_greedy(model, ids, 12, set(backend.eos_token_ids))
    assert list(got) == expected
    # the test can fail: generate() left to the checkpoint's config decodes something else
    with torch.no_grad():
        inherited = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)[0, len(ids):].tolist()
    assert inherited[0] != expected[0]
    assert model.generation_config.repetition_penalty == 3.0  # restored after the call


def test_sampling_uses_only_temperature_and_top_p(tiny_smol_model, smollm2_tokenizer) -> None:
    """Sampled tokens under the penalised checkpoint equal those of the same weights with a neutral config."""
    params = SamplingParams(max_new_tokens=8, temperature=1.0, top_p=1.0, n=3, seed=5)
    penalised = TransformersBackend(_penalised(tiny_smol_model), smollm2_tokenizer, batch_size=1)
    neutral_model = copy.deepcopy(tiny_smol_model)
    neutral_model.generation_config = GenerationConfig(eos_token_id=tiny_smol_model.generation_config.eos_token_id,
                                                       pad_token_id=tiny_smol_model.generation_config.pad_token_id)
    neutral = TransformersBackend(neutral_model, smollm2_tokenizer, batch_size=1)
    a = [g.token_ids for g in penalised.generate([PROMPT], params)[0]]
    b = [g.token_ids for g in neutral.generate([PROMPT], params)[0]]
    assert a == b
    assert len(set(a)) > 1  # top_k=2 / top_p=0.5 / no-repeat would have narrowed these


def test_suppressed_tokens_are_never_sampled(tiny_smol_model, smollm2_tokenizer) -> None:
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=2, seed=1)
    free = TransformersBackend(tiny_smol_model, smollm2_tokenizer, batch_size=1).generate([PROMPT], params)[0]
    banned = sorted({t for g in free for t in g.token_ids})
    out = TransformersBackend(tiny_smol_model, smollm2_tokenizer, batch_size=1,
                              suppress_tokens=banned).generate([PROMPT], params)[0]
    assert not {t for g in out for t in g.token_ids} & set(banned)
