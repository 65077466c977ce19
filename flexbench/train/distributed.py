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

For real GPUs (issue 25):

* :func:`grad_sync` is the gradient-accumulation switch for both wrappers:
  DDP's ``no_sync``, and for FSDP2 ``set_requires_gradient_sync`` (accelerate's
  ``no_sync`` does nothing for a model it did not wrap). Under FSDP2 deferring
  keeps *unsharded* fp32 gradients (4 P bytes per GPU) until the last
  micro-batch, which undoes ZeRO-3's gradient sharding, so by default every
  micro-batch reduce-scatters (as verl does); ``FLEXBENCH_FSDP_NO_SYNC=1`` defers.
* ``FLEXBENCH_FSDP_SHARD_SIZE=n`` shards over groups of ``n`` processes and
  replicates across groups (HSDP: a 2-D ``(replicate, shard)`` mesh, e.g. ``n`` =
  GPUs per node so that all-gathers stay on NVLink); default: one group.
* :func:`materialize_from_rank0`: ranks other than 0 may build the policy on the
  ``meta`` device (no weights read or held) and receive rank 0's weights by
  broadcast after sharding (``set_model_state_dict(broadcast_from_rank0=True)``).
* One process may shard (``FLEXBENCH_FSDP_SINGLE_PROCESS=1`` or
  ``allow_single_process=True``): a one-process group is created, so a one-GPU
  device check exercises FSDP2 on NCCL.
* The process group's timeout is ``FLEXBENCH_DIST_TIMEOUT_MIN`` minutes (default
  120): other ranks wait in a collective while rank 0 trains a missing critic,
  writes a checkpoint or saves the policy, which takes longer than NCCL's default.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch

from flexbench.errors import FlexBenchError
from flexbench.train.config import OptimizerKind, Precision, Sharding, TrainConfig
from flexbench.train.memory import env_flag, shard_group


def mixed_precision(cfg: TrainConfig) -> str:
    """Accelerate's ``mixed_precision`` for ``cfg.precision`` (``auto``: bf16 on a bf16-capable GPU)."""
    if cfg.precision is Precision.AUTO:
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return cfg.precision.value


def make_accelerator(cfg: TrainConfig) -> Any:
    """The :class:`accelerate.Accelerator` of a run: CPU when no GPU, bf16 autocast per ``cfg.precision``."""
    from accelerate import Accelerator, DistributedDataParallelKwargs, InitProcessGroupKwargs

    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision(cfg),
                       kwargs_handlers=[DistributedDataParallelKwargs(gradient_as_bucket_view=True),
                                        InitProcessGroupKwargs(timeout=collective_timeout())])


def collective_timeout() -> timedelta:
    """How long a rank waits in a collective: ``FLEXBENCH_DIST_TIMEOUT_MIN`` minutes (default 120)."""
    minutes = float(os.environ.get("FLEXBENCH_DIST_TIMEOUT_MIN", "120"))
    if not minutes > 0:
        raise FlexBenchError(f"FLEXBENCH_DIST_TIMEOUT_MIN={minutes}; it must be > 0 (minutes)")
    return timedelta(minutes=minutes)


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


def ensure_process_group(device_type: str) -> None:
    """Start a one-process group (NCCL on CUDA, else gloo) on a free loopback port unless one exists."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=0, world_size=1, timeout=collective_timeout())


def shard_mesh(device_type: str, world: int) -> Any:
    """The FSDP2 device mesh: 1-D over ``world`` processes, or 2-D ``(replicate, shard)`` (HSDP) when
    ``FLEXBENCH_FSDP_SHARD_SIZE`` divides ``world`` into groups (module docstring)."""
    from torch.distributed.device_mesh import init_device_mesh

    size = shard_group(world)
    if world % size:
        raise FlexBenchError(f"FLEXBENCH_FSDP_SHARD_SIZE={size} must divide the {world} processes")
    if size == world:
        return init_device_mesh(device_type, (world,))
    return init_device_mesh(device_type, (world // size, size), mesh_dim_names=("replicate", "shard"))


def shard_model(model: torch.nn.Module, cfg: TrainConfig, accelerator: Any, *,
                allow_single_process: bool = False) -> torch.nn.Module:
    """Apply FSDP2 to ``model`` in place per ``cfg.sharding`` (module docstring); ``none`` returns it as is.

    A model with ``meta`` parameters (built without weights on ranks other
    than 0) is materialised from rank 0's weights (:func:`materialize_from_rank0`).
    """
    if cfg.sharding is Sharding.NONE:
        return model
    import torch.distributed as dist

    single = allow_single_process or env_flag("FLEXBENCH_FSDP_SINGLE_PROCESS")
    if accelerator.num_processes < 2 and single:
        ensure_process_group(accelerator.device.type)
    elif accelerator.num_processes < 2 or not dist.is_initialized():
        raise FlexBenchError(f"sharding={cfg.sharding.value} divides the model over processes: launch with "
                             f"`accelerate launch --num_processes N -m flexbench train ...` (N >= 2), "
                             f"or --set sharding=none (FLEXBENCH_FSDP_SINGLE_PROCESS=1 shards over one process, "
                             f"for checks)")
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = shard_mesh(accelerator.device.type, dist.get_world_size())
    bf16 = mixed_precision(cfg) == "bf16"
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
    layer_reshard = cfg.sharding is Sharding.FSDP
    on_meta = any(p.is_meta for p in model.parameters())
    full = None if on_meta else {k: v.detach() for k, v in model.state_dict().items()}
    model.float()  # fp32 master weights (the trainer loads fp32 already)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=layer_reshard)
        layer._flexbench_reshard = layer_reshard  # type: ignore[assignment]
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=False)
    model._flexbench_reshard = False  # type: ignore[assignment]
    if dist.get_world_size() > 1 and _any_rank(on_meta):
        materialize_from_rank0(model, full, accelerator.device)
    return model


def _any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (one all-reduce)."""
    import torch.distributed as dist

    t = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return bool(t.item())


def materialize_from_rank0(model: torch.nn.Module, full: dict[str, torch.Tensor] | None, device: Any) -> None:
    """Fill a sharded ``model`` with rank 0's weights: rank 0 passes its full state dict, the others ``None``.

    Ranks other than 0 built the model on the ``meta`` device (no weights read):
    their shards are allocated (``to_empty``), then
    ``set_model_state_dict(..., broadcast_from_rank0=True)`` sends each tensor
    from rank 0 and keeps this rank's shard; buffers outside the state dict
    (rotary ``inv_freq``) are broadcast one by one. Every rank calls it.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    rank0 = dist.get_rank() == 0
    if rank0 and full is None:
        raise FlexBenchError("materialize_from_rank0: rank 0 must hold the loaded weights (not meta)")
    if any(p.is_meta for p in model.parameters()) or any(b.is_meta for b in model.buffers()):
        model.to_empty(device=device)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full if rank0 else {}, options=options)
    persistent = set(model.state_dict())
    for name, buf in model.named_buffers():
        if name not in persistent:
            dist.broadcast(buf.data, src=0)


def _fsdp_root(model: torch.nn.Module) -> Any:
    from torch.distributed.fsdp import FSDPModule

    return model if isinstance(model, FSDPModule) else None


@contextmanager
def grad_sync(model: torch.nn.Module, accelerator: Any, enabled: bool) -> Iterator[None]:
    """Reduce gradients in the backward passes inside the block (``enabled``) or accumulate them locally.

    The micro-batch loop calls ``with grad_sync(model, acc, enabled=k == last): backward``.
    DDP: ``accelerator.no_sync`` when not enabled. FSDP2: every micro-batch
    reduce-scatters (sharded gradients, no extra memory) unless
    ``FLEXBENCH_FSDP_NO_SYNC=1``, which calls ``set_requires_gradient_sync(False)``
    and keeps unsharded gradients (4 P bytes) until the last micro-batch.
    """
    root = _fsdp_root(model)
    if enabled or (root is None and accelerator.num_processes < 2):
        yield
        return
    if root is None:
        with accelerator.no_sync(model):
            yield
        return
    if not env_flag("FLEXBENCH_FSDP_NO_SYNC"):
        yield
        return
    root.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        root.set_requires_gradient_sync(True)


@contextmanager
def gathered_weights(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Keep every FSDP unit of ``model`` gathered inside the block (no-op for unsharded models).

    Inside, forwards (``generate``, scoring) issue no collectives, so ranks may
    run different numbers of them. Every rank must enter and leave the block.
    ``enabled=False`` gathers nothing: a vLLM engine samples from its own copy
    (``EngineSync.needs_policy_weights``), so the full bf16 copy need not be
    held while it samples.
    """
    units = fsdp_modules(model) if enabled else []
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


def sharded_state(model: torch.nn.Module, value_head: torch.nn.Module | None, optimizer: Any) -> dict[str, Any]:
    """This rank's shards of the model and optimizer (DTensors, not gathered), for ``torch.distributed.checkpoint``."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    return {"model": get_model_state_dict(model),
            "optimizer": get_optimizer_state_dict(_box(model, value_head), _inner(optimizer))}


def restore_sharded_state(model: torch.nn.Module, value_head: torch.nn.Module | None, optimizer: Any,
                          checkpoint_id: str) -> None:
    """Load this rank's shards written by :func:`sharded_state` (a collective; any number of processes)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    if not is_sharded(model):
        raise FlexBenchError("this checkpoint was written by a sharded run; resume it with --set sharding=fsdp "
                             "or zero2")
    state = sharded_state(model, value_head, optimizer)
    dcp.load(state, checkpoint_id=checkpoint_id)
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(_box(model, value_head), _inner(optimizer), state["optimizer"])


def world_bytes(local: int) -> int:
    """The sum of ``local`` over all processes (one all-reduce; ``local`` without a process group)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return local
    t = torch.tensor([float(local)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return int(t.item())


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
