"""A thin adapter over vLLM's documented offline API (``vllm.LLM`` and ``vllm.SamplingParams``).

UNTESTED HERE: vLLM pins its own torch and transformers (vLLM 0.33 needs
``torch==2.14`` and ``transformers<5.21``), so it cannot be installed next to this
project's pins, and the machines used to build FlexBench have no GPU with vLLM.
The unit tests cover only what needs no vLLM: the mapping of
:class:`~flexbench.llm.backends.base.SamplingParams` to vLLM's keyword arguments
and the conversion of vLLM's ``RequestOutput`` objects, against a stand-in
module with the documented attribute names (``outputs[i].text``, ``.token_ids``,
``.finish_reason``). Install vLLM in its own environment (``pip install
flexbench[gpu]`` there) to use it.

Constrained decoding is not offered here: a permutation constraint is not a
regular language of manageable size, and vLLM's per-request logits processors
changed between engine versions. Use :class:`TransformersBackend` for
``zero-shot-constrained``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.llm.backends.base import Generation, SamplingParams
from flexbench.llm.models import resolve_model_ref


def import_vllm() -> Any:
    """Import vLLM or raise a :class:`FlexBenchError` that says how to get it."""
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise FlexBenchError("vLLM is not installed; it pins its own torch and transformers, so install "
                             "it in a separate environment with a CUDA GPU (pip install 'flexbench[gpu]'), "
                             "or use the transformers backend") from exc


def vllm_sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` equivalent to ``params``."""
    kwargs: dict[str, Any] = {"n": params.n, "max_tokens": params.max_new_tokens, "seed": params.seed}
    if params.greedy:
        kwargs.update(temperature=0.0, top_p=1.0)
    else:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    return kwargs


def to_generations(request_output: Any) -> list[Generation]:
    """Convert one ``vllm.RequestOutput`` to our generations."""
    return [Generation(text=c.text, token_ids=tuple(int(t) for t in c.token_ids),
                       finish_reason=str(c.finish_reason or "stop"))
            for c in request_output.outputs]


class VLLMBackend:
    """:class:`~flexbench.llm.backends.base.GenerationBackend` over a vLLM offline engine."""

    def __init__(self, model_ref: str, *, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, seed: int = 0, **engine_kwargs: Any) -> None:
        self._vllm = import_vllm()
        self.model_ref = model_ref
        self.llm = self._vllm.LLM(model=resolve_model_ref(model_ref), dtype=dtype, seed=seed,
                                  gpu_memory_utilization=gpu_memory_utilization,
                                  max_model_len=max_model_len, **engine_kwargs)

    def generate(self, prompts: Sequence[str], params: SamplingParams,
                 candidate_ids: Sequence[Sequence[str]] | None = None) -> list[list[Generation]]:
        """``params.n`` generations per prompt, in input order."""
        if candidate_ids is not None:
            raise FlexBenchError("constrained decoding is implemented for the transformers backend only")
        sampling = self._vllm.SamplingParams(**vllm_sampling_kwargs(params))
        outputs = self.llm.generate(list(prompts), sampling, use_tqdm=False)
        return [to_generations(o) for o in outputs]
