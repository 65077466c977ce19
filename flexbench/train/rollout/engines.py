"""Rollout engines for training: which backend samples the rollouts and how its weights follow the policy.

:func:`make_backend` returns the generation backend and a ``sync(model)`` callable
that the loop runs after every optimizer step: transformers ``generate`` on the
live policy needs no sync; a vLLM engine gets the policy's new weights.
"""

from __future__ import annotations

from typing import Any

from flexbench.train.config import RolloutEngine, TrainConfig


def make_backend(cfg: TrainConfig, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """The rollout backend and a ``sync(model)`` callable run after each optimizer step.

    ``transformers``: :class:`flexbench.llm.backends.TransformersBackend` on the
    live policy (nothing to sync). ``vllm``: a vLLM engine whose weights are
    overwritten from the policy after each update (GPU only; untested here).
    ``auto`` picks vLLM when it is importable and a GPU is present.
    """
    engine = cfg.engine
    if engine is RolloutEngine.AUTO:
        usable = _vllm_usable() and not cfg.constrained  # vLLM has no permutation-constrained decoding here
        engine = RolloutEngine.VLLM if usable else RolloutEngine.TRANSFORMERS
    if engine is RolloutEngine.TRANSFORMERS:
        from flexbench.llm.backends import TransformersBackend

        return TransformersBackend(model, tokenizer, batch_size=cfg.group_size), _no_sync
    return _vllm_backend(cfg, model)


def _no_sync(model: Any) -> None:
    return None


def _vllm_usable() -> bool:
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None


def _vllm_backend(cfg: TrainConfig, model: Any) -> tuple[Any, Any]:  # pragma: no cover - needs vLLM + GPU
    """A vLLM engine on the policy's weights, re-synced from the live policy after every update.

    The engine shares the GPU with training, so it gets 30% of the memory. The
    sync writes every tensor of the policy's state dict into the engine's model
    through ``load_weights`` (vLLM's offline-engine internals, which move between
    vLLM versions: the one place to adapt).
    """
    from flexbench.errors import FlexBenchError
    from flexbench.llm.backends import VLLMBackend

    if not _vllm_usable():
        raise FlexBenchError("engine=vllm needs vLLM and a CUDA GPU; use --set engine=transformers")
    if cfg.constrained:
        raise FlexBenchError("constrained rollouts need engine=transformers (--set engine=transformers)")
    backend = VLLMBackend(getattr(model, "name_or_path", cfg.model), gpu_memory_utilization=0.3, seed=cfg.seed)

    def sync(policy: Any) -> None:
        executor = backend.llm.llm_engine.model_executor
        worker = getattr(executor, "driver_worker", None)
        runner = getattr(getattr(worker, "worker", worker), "model_runner", None)
        if runner is None:
            raise FlexBenchError("this vLLM version hides its model runner; use --set engine=transformers")
        unwrapped = policy.module if hasattr(policy, "module") else policy
        runner.model.load_weights((name, tensor.detach()) for name, tensor in unwrapped.state_dict().items())

    return backend, sync
