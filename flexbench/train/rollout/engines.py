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

What the vLLM path does for a real GPU (issue 25):

* the engine's context is ``max_model_len`` = prompt budget + ``max_new_tokens``
  (:func:`engine_max_len`), not the model's 32k default;
* the push casts each tensor to the engine's dtype (bf16 on GPU) *before* an
  FSDP shard is gathered (:func:`~flexbench.train.rollout.weights.policy_weights`
  ``dtype``), halving the gather and the transient copy, as verl does;
* :attr:`EngineSync.needs_policy_weights` says whether sampling runs on the live
  policy: with vLLM it does not, so the loop can leave FSDP's gathered weights
  closed while the engine samples (one full bf16 copy less);
* every process samples with its own seed (:class:`RankSeeded`: rank 0 keeps
  the run's seeds, so a one-process run is unchanged).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from flexbench.errors import FlexBenchError
from flexbench.train.config import RolloutEngine, TrainConfig


class EngineSync(Protocol):
    """Keeps a rollout engine's weights equal to the policy's.

    ``needs_policy_weights``: whether the backend samples from the live policy
    (then FSDP must gather its weights around sampling; a separate engine does not need them).
    """

    needs_policy_weights: bool

    def __call__(self, policy: Any) -> dict[str, float]:
        """Push ``policy``'s weights after an update; metrics of the push (empty when nothing moved)."""
        ...

    def release(self) -> None:
        """Called after the rollouts of a step: the engine may free memory until the next push."""
        ...


class NoSync:
    """The transformers backend samples from the live policy: nothing to push."""

    needs_policy_weights = True

    def __call__(self, policy: Any) -> dict[str, float]:
        return {}

    def release(self) -> None:
        return None


class VLLMSync:
    """Push the policy's weights into a :class:`VLLMBackend`; sleep it during the update if ``sleep``.

    Tensors are cast to the engine's dtype (``backend.weight_dtype``: bf16 on GPU)
    before they are gathered and pushed.
    """

    needs_policy_weights = False

    def __init__(self, backend: Any, *, sleep: bool = False) -> None:
        self.backend, self.sleep = backend, sleep

    def __call__(self, policy: Any) -> dict[str, float]:
        from flexbench.train.rollout.weights import policy_weights

        dtype = getattr(self.backend, "weight_dtype", None)
        push = self.backend.update_weights(policy_weights(policy, dtype=dtype))
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
        return rank_seeded(TransformersBackend(model, tokenizer, batch_size=cfg.group_size)), NoSync()
    backend = vllm_engine(cfg, model, tokenizer)
    announce(f"rollout engine: {backend.describe()} ({why})")
    return rank_seeded(backend), VLLMSync(backend, sleep=cfg.vllm_sleep)


def process_rank() -> tuple[int, int]:
    """``(rank, world size)`` of this process (``RANK`` / ``WORLD_SIZE``, set by ``accelerate launch`` and torchrun)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class RankSeeded:
    """A backend whose sampling seed differs on every process: ``seed`` on rank 0, a hash of ``(seed, rank)`` else.

    The sampler seeds each step from ``(seed, step)`` alone, so without this every
    process would draw its rollouts from the same random stream (vLLM seeds each
    request; ``generate`` seeds torch). Other attributes pass through to the backend.
    """

    def __init__(self, backend: Any, rank: int) -> None:
        self.backend, self.rank = backend, rank

    def generate(self, prompts: Sequence[str], params: Any, candidate_ids: Any = None) -> Any:
        from dataclasses import replace

        return self.backend.generate(prompts, replace(params, seed=rank_seed(params.seed, self.rank)), candidate_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


def rank_seed(seed: int, rank: int) -> int:
    """This rank's sampling seed: ``seed`` on rank 0, else a stable hash of ``(seed, rank)`` in ``[0, 2^31)``."""
    if rank == 0:
        return seed
    from flexbench.repair import stable_rng

    return int(stable_rng("rank-seed", seed, rank).integers(2**31 - 1))


def rank_seeded(backend: Any) -> Any:
    """``backend`` behind :class:`RankSeeded` when several processes train, else as is."""
    rank, world = process_rank()
    return RankSeeded(backend, rank) if world > 1 else backend


def engine_max_len(cfg: TrainConfig, model_max: int | None = None) -> int:
    """The engine's context length: prompt budget + ``max_new_tokens``, at most ``model_max``.

    The prompt budget is 1.5 x ``plan_prompt_tokens`` rounded up to 256 (K = 30
    prompts measure 1,240-1,730 tokens against the default 1,500: 2,304 leaves
    room); a longer prompt is refused by the engine with a message naming
    ``plan_prompt_tokens``. vLLM's default is the model's whole context (32,768
    for Qwen2.5), which it must be able to hold in its KV cache at start-up.
    """
    budget = -(-int(1.5 * cfg.plan_prompt_tokens) // 256) * 256
    total = budget + cfg.max_new_tokens
    return min(total, model_max) if model_max else total


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

    # the sampled tokens' log-probs under the distribution the trainer scores: the model's (raw) at
    # temperature 1; temperature-scaled (vLLM's "processed", after temperature and top-p) otherwise
    kwargs: dict[str, Any] = {"logprobs_mode": "raw_logprobs" if cfg.temperature == 1.0 else "processed_logprobs"}
    rank, world = process_rank()
    if world > 1:
        kwargs["distributed_executor_backend"] = "external_launcher"
    model_max = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return VLLMBackend(cfg.model, dtype="auto" if torch.cuda.is_available() else "float32",
                       gpu_memory_utilization=cfg.vllm_gpu_memory, seed=cfg.seed + rank, sleep_mode=cfg.vllm_sleep,
                       tokenizer=tokenizer, max_model_len=engine_max_len(cfg, model_max), **kwargs)


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
