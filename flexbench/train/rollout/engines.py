"""Rollout engines for training: which backend samples the rollouts and how its weights follow the policy.

:func:`make_backend` returns the generation backend and its
:class:`EngineSync`, which the loop calls at two points of every RL step::

    rollouts = backend.generate(...)      # the engine holds the policy's current weights
    sync.release()                        # vLLM sleep mode: free the engine's memory for the update
    ... log-probs, optimizer steps ...
    info = sync(policy)                   # push the new weights; {"sync_seconds": ...} for metrics.jsonl

``transformers``: ``generate`` on the live policy; nothing to push
(:class:`NoSync`). ``vllm``: a colocated in-process vLLM engine
(:class:`~flexbench.llm.backends.vllm_backend.VLLMBackend`); :class:`VLLMSync`
pushes the policy's full weights under their checkpoint names
(:func:`~flexbench.train.rollout.weights.policy_weights`: LoRA merged, FSDP
gathered) through the engine's ``reload_weights``, and the engine resets its
prefix cache after every push. ``auto`` picks vLLM only with a CUDA GPU and an
importable vLLM and free-form rollouts, and says which engine it picked and why
(one line on stderr); ``engine=vllm`` also runs vLLM's CPU build (``.venv-vllm``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from flexbench.errors import FlexBenchError
from flexbench.train.config import RolloutEngine, TrainConfig


class EngineSync(Protocol):
    """Keeps a rollout engine's weights equal to the policy's."""

    def __call__(self, policy: Any) -> dict[str, float]:
        """Push ``policy``'s weights after an update; metrics of the push (empty when nothing moved)."""
        ...

    def release(self) -> None:
        """Called after the rollouts of a step: the engine may free memory until the next push."""
        ...


class NoSync:
    """The transformers backend samples from the live policy: nothing to push."""

    def __call__(self, policy: Any) -> dict[str, float]:
        return {}

    def release(self) -> None:
        return None


class VLLMSync:
    """Push the policy's weights into a :class:`VLLMBackend`; sleep it during the update if ``sleep``."""

    def __init__(self, backend: Any, *, sleep: bool = False) -> None:
        self.backend, self.sleep = backend, sleep

    def __call__(self, policy: Any) -> dict[str, float]:
        from flexbench.train.rollout.weights import policy_weights

        push = self.backend.update_weights(policy_weights(policy))
        return {"sync_seconds": push.seconds, "sync_mb": push.bytes / 2**20}

    def release(self) -> None:
        if self.sleep:
            self.backend.sleep(level=2)  # weights discarded: the push after the update restores them


def choose_engine(cfg: TrainConfig) -> tuple[RolloutEngine, str]:
    """The engine ``cfg.engine`` resolves to here, and why."""
    if cfg.engine is not RolloutEngine.AUTO:
        return cfg.engine, f"engine={cfg.engine.value}"
    if cfg.constrained:
        return RolloutEngine.TRANSFORMERS, ("engine=auto with constrained=true: permutation-constrained "
                                            "decoding runs on the transformers backend only")
    from flexbench.llm.backends.vllm_backend import vllm_installed

    if not vllm_installed():
        return RolloutEngine.TRANSFORMERS, "engine=auto: vLLM is not installed in this environment"
    import torch

    if not torch.cuda.is_available():
        return RolloutEngine.TRANSFORMERS, ("engine=auto: no CUDA GPU (on CPU, --set engine=vllm runs vLLM's "
                                            "CPU build)")
    return RolloutEngine.VLLM, "engine=auto: vLLM installed and a CUDA GPU present"


def make_backend(cfg: TrainConfig, model: Any, tokenizer: Any) -> tuple[Any, EngineSync]:
    """The rollout backend and its :class:`EngineSync` (see the module docstring); logs the choice."""
    engine, why = choose_engine(cfg)
    if engine is RolloutEngine.TRANSFORMERS:
        from flexbench.llm.backends import TransformersBackend

        announce(f"rollout engine: transformers generate on the live policy ({why})")
        return TransformersBackend(model, tokenizer, batch_size=cfg.group_size), NoSync()
    backend = vllm_engine(cfg, model, tokenizer)
    announce(f"rollout engine: {backend.describe()} ({why})")
    return backend, VLLMSync(backend, sleep=cfg.vllm_sleep)


def vllm_engine(cfg: TrainConfig, model: Any, tokenizer: Any) -> Any:
    """A colocated vLLM engine on the policy's checkpoint (the loop pushes the policy's weights
    before the first rollout: a resumed run's or a warmed-up one's differ from the checkpoint).

    The engine's dtype follows the
    trainer's compute dtype: float32 on CPU, vLLM's ``auto`` (bf16 for a bf16 or
    fp32 checkpoint) on GPU. Under ``accelerate launch`` every process runs its own
    engine through vLLM's ``external_launcher`` executor, as TRL's colocate mode
    does (not run on multi-GPU machines here).
    """
    from flexbench.llm.backends import VLLMBackend

    if cfg.constrained:
        raise FlexBenchError("constrained rollouts need engine=transformers: vLLM has no permutation-constrained "
                             "decoding here (--set engine=transformers, or --set constrained=false)")
    import torch

    kwargs: dict[str, Any] = {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        kwargs["distributed_executor_backend"] = "external_launcher"
    return VLLMBackend(cfg.model, dtype="auto" if torch.cuda.is_available() else "float32",
                       gpu_memory_utilization=cfg.vllm_gpu_memory, seed=cfg.seed, sleep_mode=cfg.vllm_sleep,
                       tokenizer=tokenizer, **kwargs)


def announce(line: str) -> None:
    """One line on stderr (training's only log line about the engine)."""
    print(f"[flexbench] {line}", file=sys.stderr, flush=True)


def logprob_gap(trainer_logprobs: Any, rollouts: Sequence[Any]) -> float | None:
    """``mean_t |log p_engine(y_t) - log p_trainer(y_t)|`` over the completion tokens of ``rollouts``.

    ``trainer_logprobs`` is ``[B, T]`` (row ``j`` for ``rollouts[j]``, right-padded);
    the engine's values are each rollout's ``sampling_logprobs``. The standard RL
    sanity signal for the sync (TRL and verl log the same difference): with the
    same weights and dtype it is float noise (measured on CPU in fp32: see
    docs/GPU.md); a stale or wrongly mapped push shows up as a jump. ``None`` when
    the engine reported no log-probs (the transformers backend) or there are no tokens.
    """
    import torch

    if not rollouts or any(r.sampling_logprobs is None for r in rollouts):
        return None
    diffs = [(trainer_logprobs[j, :len(r.completion_ids)].detach().float().cpu()
              - torch.tensor(r.sampling_logprobs, dtype=torch.float32)).abs() for j, r in enumerate(rollouts)]
    flat = torch.cat(diffs)
    return float(flat.mean()) if flat.numel() else None
