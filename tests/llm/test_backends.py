"""Generation backends: sampling settings, the transformers backend, and the vLLM adapter's mapping."""

from __future__ import annotations

import sys
import types

import pytest

from flexbench.errors import FlexBenchError
from flexbench.llm.backends import GenerationBackend, SamplingParams
from flexbench.llm.backends.transformers_backend import TransformersBackend
from flexbench.llm.parsing import decode_text

PROMPTS = ["<|im_start|>user\nRank [1] and [2].<|im_end|>\n<|im_start|>assistant\n",
           ("<|im_start|>user\nA much longer prompt so that padding happens on the left side.<|im_end|>\n"
            "<|im_start|>assistant\n"),
           "<|im_start|>user\nThird.<|im_end|>\n<|im_start|>assistant\n"]


@pytest.mark.parametrize("kwargs", [{"max_new_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0},
                                    {"n": 0}, {"n": 2, "temperature": 0.0}])
def test_sampling_params_reject_bad_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)


def test_transformers_backend_shapes_order_and_determinism(tiny_smol_model, smollm2_tokenizer) -> None:
    backend = TransformersBackend(tiny_smol_model, smollm2_tokenizer, batch_size=2)
    assert isinstance(backend, GenerationBackend)
    greedy = backend.generate(PROMPTS, SamplingParams(max_new_tokens=5))
    assert [len(g) for g in greedy] == [1, 1, 1]
    for gens in greedy:
        g = gens[0]
        assert g.text == decode_text(smollm2_tokenizer, g.token_ids)
        assert g.finish_reason in ("stop", "length") and len(g.token_ids) <= 5
    # batching must not change greedy outputs: each prompt alone gives the same tokens
    alone = [backend.generate([p], SamplingParams(max_new_tokens=5))[0][0] for p in PROMPTS]
    assert [g.token_ids for g in alone] == [gens[0].token_ids for gens in greedy]
    params = SamplingParams(max_new_tokens=6, temperature=1.0, n=3, seed=11)
    first, second = backend.generate(PROMPTS, params), backend.generate(PROMPTS, params)
    assert [len(g) for g in first] == [3, 3, 3]
    assert [[g.token_ids for g in gs] for gs in first] == [[g.token_ids for g in gs] for gs in second]
    assert len({g.token_ids for g in first[0]}) > 1  # rollouts differ


def test_transformers_backend_requires_left_padding(tiny_smol_model, smollm2_tokenizer) -> None:
    smollm2_tokenizer.padding_side = "right"
    try:
        with pytest.raises(ValueError, match="left padding"):
            TransformersBackend(tiny_smol_model, smollm2_tokenizer)
    finally:
        smollm2_tokenizer.padding_side = "left"


class _FakeVLLM(types.ModuleType):
    """Stand-in with vLLM's documented offline API names (LLM, SamplingParams, RequestOutput)."""

    def __init__(self) -> None:
        super().__init__("vllm")
        self.engines: list[dict] = []
        fake = self

        class SamplingParamsStub:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class LLM:
            def __init__(self, **kwargs):
                fake.engines.append(kwargs)

            def generate(self, prompts, sampling, use_tqdm=True):
                n = sampling.kwargs["n"]
                completion = types.SimpleNamespace
                return [types.SimpleNamespace(outputs=[completion(text=f"[{i}]", token_ids=[i, 2],
                                                                  finish_reason="stop") for i in range(n)])
                        for _ in prompts]

        self.LLM, self.SamplingParams = LLM, SamplingParamsStub


def test_vllm_adapter_maps_parameters_and_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    from flexbench.llm.backends.vllm_backend import VLLMBackend, vllm_sampling_kwargs

    assert vllm_sampling_kwargs(SamplingParams(max_new_tokens=7, temperature=0.0, top_p=0.5)) == {
        "n": 1, "max_tokens": 7, "seed": 0, "temperature": 0.0, "top_p": 1.0}
    assert vllm_sampling_kwargs(SamplingParams(temperature=0.7, top_p=0.9, n=4, seed=3)) == {
        "n": 4, "max_tokens": 256, "seed": 3, "temperature": 0.7, "top_p": 0.9}
    fake = _FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake)
    backend = VLLMBackend("some/model", dtype="bfloat16", max_model_len=4096)
    assert fake.engines[0]["model"] == "some/model" and fake.engines[0]["max_model_len"] == 4096
    out = backend.generate(["a", "b"], SamplingParams(temperature=1.0, n=2))
    assert [[g.text for g in gs] for gs in out] == [["[0]", "[1]"], ["[0]", "[1]"]]
    assert out[0][1].token_ids == (1, 2) and out[0][1].finish_reason == "stop"
    with pytest.raises(FlexBenchError, match="transformers backend"):
        backend.generate(["a"], SamplingParams(), candidate_ids=[["x"]])


def test_vllm_missing_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from flexbench.llm.backends.vllm_backend import VLLMBackend

    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(FlexBenchError, match="vLLM is not installed"):
        VLLMBackend("some/model")
