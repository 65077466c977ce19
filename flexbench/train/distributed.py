"""Multi-process training: the accelerator, FSDP2 sharding, full weights for generation and checkpoints.

``accelerate launch --num_processes N -m flexbench train ...`` starts ``N``
processes; :func:`make_accelerator` gives each its device and the process group.

* ``sharding=none``: the policy is wrapped in DDP by ``accelerator.prepare``
  (gradient buckets double as ``.grad``: ``gradient_as_bucket_view``).
* ``sharding=fsdp`` / ``zero2``: :func:`shard_model` applies torch's FSDP2
  ``fully_shard`` to every decoder layer and then to the root (embeddings, final
  norm, output layer), as accelerate's ``fsdp2_prepare_model`` does, with bf16
  compute (``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``) over
  fp32 sharded master weights. It is applied here rather than through
  accelerate's FSDP plugin because accelerate enables FSDP only for GPU process
  groups; the same code then runs on CPU with gloo, where it is tested.

Generation under FSDP runs inside :func:`gathered_weights`: every FSDP unit is
all-gathered once and kept gathered until the block ends, so decoding issues no
collectives and ranks may generate different numbers of tokens (validation
splits its instances across ranks). :func:`full_state_dict` (checkpoints, rank 0)
and :func:`iter_full_parameters` (one gathered tensor at a time, on every rank:
for a rollout engine's weight sync) give the unsharded weights.

The PPO value head stays outside DDP/FSDP: :func:`average_gradients` all-reduces
its gradients before each optimizer step, and :func:`clip_grad_norm` clips the
joint norm of sharded (DTensor) and local gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from flexbench.errors import FlexBenchError
from flexbench.train.config import OptimizerKind, Precision, Sharding, TrainConfig


def mixed_precision(cfg: TrainConfig) -> str:
    """Accelerate's ``mixed_precision`` for ``cfg.precision`` (``auto``: bf16 on a bf16-capable GPU)."""
    if cfg.precision is Precision.AUTO:
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return cfg.precision.value


def make_accelerator(cfg: TrainConfig) -> Any:
    """The :class:`accelerate.Accelerator` of a run: CPU when no GPU, bf16 autocast per ``cfg.precision``."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision(cfg),
                       kwargs_handlers=[DistributedDataParallelKwargs(gradient_as_bucket_view=True)])


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW over ``params``: torch's (two fp32 states) or bitsandbytes' 8-bit one (``optimizer=adamw8bit``)."""
    if cfg.optimizer is OptimizerKind.ADAMW:
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise FlexBenchError("optimizer=adamw8bit needs bitsandbytes: pip install bitsandbytes "
                             "(or --set optimizer=adamw)") from None
    return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=cfg.weight_decay)


# ------------------------------------------------------------------------------------------ sharding
def fsdp_modules(model: torch.nn.Module) -> list[Any]:
    """The FSDP2 units inside ``model`` (root last); empty when it is not sharded."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    return units[1:] + units[:1] if units and units[0] is model else units


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` was sharded by :func:`shard_model`."""
    return bool(fsdp_modules(model))


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder blocks of a causal LM: the module list holding ``config.num_hidden_layers`` blocks."""
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return list(module)
    raise FlexBenchError(f"sharding: found no list of {count} decoder layers in {type(model).__name__}")


def shard_model(model: torch.nn.Module, cfg: TrainConfig, accelerator: Any) -> torch.nn.Module:
    """Apply FSDP2 to ``model`` in place per ``cfg.sharding`` (module docstring); ``none`` returns it as is."""
    if cfg.sharding is Sharding.NONE:
        return model
    import torch.distributed as dist

    if accelerator.num_processes < 2 or not dist.is_initialized():
        raise FlexBenchError(f"sharding={cfg.sharding.value} divides the model over processes: launch with "
                             f"`accelerate launch --num_processes N -m flexbench train ...` (N >= 2), "
                             f"or --set sharding=none")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    bf16 = mixed_precision(cfg) == "bf16"
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
    layer_reshard = cfg.sharding is Sharding.FSDP
    model.float()  # fp32 master weights (the trainer loads fp32 already)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=layer_reshard)
        layer._flexbench_reshard = layer_reshard  # type: ignore[assignment]
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=False)
    model._flexbench_reshard = False  # type: ignore[assignment]
    return model


@contextmanager
def gathered_weights(model: torch.nn.Module) -> Iterator[None]:
    """Keep every FSDP unit of ``model`` gathered inside the block (no-op for unsharded models).

    Inside, forwards (``generate``, scoring) issue no collectives, so ranks may
    run different numbers of them. Every rank must enter and leave the block.
    """
    units = fsdp_modules(model)
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(getattr(unit, "_flexbench_reshard", True), recurse=False)


# ------------------------------------------------------------------------------------- full weights
def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module under a DDP wrapper (FSDP2 shards in place: nothing to unwrap)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def full_state_dict(model: torch.nn.Module, *, rank0_only: bool = True) -> dict[str, torch.Tensor]:
    """Unsharded ``state_dict`` of ``model``.

    Sharded: a collective (every rank calls it); ``rank0_only`` gives rank 0 the
    full tensors on CPU and the other ranks ``{}``, else every rank gets them on
    its device. Unsharded: the (DDP-unwrapped) module's tensors, detached, not copied.
    """
    if not is_sharded(model):
        return {k: v.detach() for k, v in unwrap(model).state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=rank0_only))


def iter_full_parameters(model: torch.nn.Module, dtype: torch.dtype | None = None
                         ) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full tensor)`` of every state-dict entry, gathered one at a time on every rank.

    For a colocated rollout engine's weight sync under FSDP (each rank loads the
    full weights into its own engine); peak extra memory is one tensor. All ranks
    must consume the iterator to the end, in step.
    """
    from torch.distributed.tensor import DTensor

    for name, tensor in unwrap(model).state_dict().items():
        full = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        yield name, (full.detach() if dtype is None else full.detach().to(dtype))


def _box(model: torch.nn.Module, value_head: torch.nn.Module | None) -> torch.nn.Module:
    parts = {"policy": model, **({"value_head": value_head} if value_head is not None else {})}
    return torch.nn.ModuleDict(parts)


def _inner(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it


def sharded_training_state(model: torch.nn.Module, value_head: torch.nn.Module | None,
                           optimizer: Any) -> dict[str, Any]:
    """Full model, value-head and optimizer states of a sharded run (collective; rank 0 holds them)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {"sharded": True, "model": full_state_dict(model),
            "value_head": value_head.state_dict() if value_head is not None else None,
            "optimizer": get_optimizer_state_dict(_box(model, value_head), _inner(optimizer), options=options)}


def restore_sharded_training_state(model: torch.nn.Module, value_head: torch.nn.Module | None, optimizer: Any,
                                   state: dict[str, Any]) -> None:
    """Load what :func:`sharded_training_state` saved (every rank reads the same full state)."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    if not state.get("sharded"):
        raise FlexBenchError("this checkpoint was written without sharding; resume it with --set sharding=none")
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, state["model"], options=options)
    if value_head is not None and state.get("value_head") is not None:
        value_head.load_state_dict(state["value_head"])
    set_optimizer_state_dict(_box(model, value_head), _inner(optimizer), state["optimizer"], options=options)


# ------------------------------------------------------------------------------------------ gradients
def average_gradients(params: Iterable[torch.nn.Parameter], world: int) -> None:
    """Replace the gradients of ``params`` by their mean over the ``world`` processes (one all-reduce)."""
    grads = [p.grad for p in params if p.grad is not None]
    if world < 2 or not grads:
        return
    import torch.distributed as dist

    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def clip_grad_norm(params: Sequence[torch.nn.Parameter], max_norm: float, accelerator: Any) -> float:
    """Clip the gradients of ``params`` to a joint L2 norm of ``max_norm``; return the norm before clipping.

    Plain parameters go through ``accelerator.clip_grad_norm_``; with FSDP's
    DTensor parameters the norm is ``sqrt(|g_sharded|^2 + |g_local|^2)``, the
    sharded part reduced over ranks.
    """
    from torch.distributed.tensor import DTensor

    if not any(isinstance(p, DTensor) for p in params):
        norm = accelerator.clip_grad_norm_(list(params), max_norm)
        return float(norm) if norm is not None else math.nan
    grads = [p.grad for p in params if p.grad is not None]
    squares = 0.0
    for group in ([g for g in grads if isinstance(g, DTensor)], [g for g in grads if not isinstance(g, DTensor)]):
        if group:
            norm = torch.nn.utils.get_total_norm(group, 2.0)
            norm = norm.full_tensor() if isinstance(norm, DTensor) else norm
            squares += float(norm) ** 2
    total = math.sqrt(squares)
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)
    return total


# ----------------------------------------------------------------------------------------- validation
def rank_share(count: int, rank: int, world: int) -> list[int]:
    """Positions ``rank, rank + world, ...`` of ``count`` items: this rank's share of the work."""
    return list(range(rank, count, world))


def gather_objects(obj: Any, accelerator: Any) -> list[Any]:
    """``obj`` of every process, in rank order (a collective; ``[obj]`` with one process)."""
    if accelerator.num_processes < 2:
        return [obj]
    from accelerate.utils import gather_object

    return list(gather_object([obj]))
