"""Resumable training state and the saved policy.

``<out>/checkpoint/state.pt`` holds everything an interrupted run needs to
continue bit-for-bit on CPU: the trainable parameters (all weights for
full-parameter training, the adapters under LoRA), the value head, the
optimizer and scheduler states, the Python/NumPy/torch RNG states, the step
count and the data-order position. It is written to a temporary directory and
renamed into place, so an interruption during saving leaves the previous
checkpoint intact, when the disk holds two checkpoints. When it does not
(:func:`room_for_two`: free space below the new checkpoint's size plus 5 %,
e.g. a 37 GB state of a 3 B model on a 60 GB disk) the previous one is removed
*before* the new one is written, with a line on stderr, so the disk never has
to hold two full copies; ``FLEXBENCH_CKPT_KEEP_PREVIOUS=1`` / ``0`` forces either.

Sharded runs (FSDP2) have a second layout, written by the collective
:func:`save_training_state`: every rank writes its own shards of the model and
optimizer with ``torch.distributed.checkpoint`` (``checkpoint/dcp/``; no full
state gathered on rank 0, no rank reading the whole file on resume, and it
resumes on another number of processes), and ``state.pt`` holds only the step,
position, scheduler, RNG and value head, with ``"format": "dcp"``.
:func:`load_checkpoint` reads both layouts; the directory must be on a
filesystem every node sees (multi-node runs).

``<out>/policy/`` is the final model in ``save_pretrained`` layout (LoRA
adapters merged), with its tokenizer: what
:class:`~flexbench.train.policy_ranker.TrainedPolicyRanker` loads.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT = "checkpoint"
POLICY = "policy"
STATE_FILE = "state.pt"
DCP_DIR = "dcp"
DISK_MARGIN = 1.05


@dataclass(frozen=True)
class Progress:
    """Where training stands: optimizer steps done and prompts drawn."""

    step: int = 0
    position: int = 0


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the parameters that require gradients, by name."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_bytes(obj: Any) -> int:
    """Bytes of the tensors inside a (nested) checkpoint state (this rank's shard of a DTensor)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.to_local() if hasattr(obj, "to_local") else obj
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def room_for_two(out_dir: Path, new_bytes: int) -> bool:
    """Whether the previous checkpoint may stay while the new one (``new_bytes``) is written.

    ``FLEXBENCH_CKPT_KEEP_PREVIOUS`` = 1 / 0 forces it; otherwise the free space
    of ``out_dir``'s filesystem must exceed ``new_bytes`` plus 5 %.
    """
    forced = os.environ.get("FLEXBENCH_CKPT_KEEP_PREVIOUS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return shutil.disk_usage(out_dir).free > DISK_MARGIN * new_bytes


def _prepare_swap(out_dir: Path, new_bytes: int) -> Path:
    """Clear the temporaries and return a fresh ``.checkpoint.tmp`` to write into.

    The previous checkpoint stays until :func:`_finish_swap` unless
    :func:`room_for_two` says the disk cannot hold both; then it is removed now (and said so).
    """
    final, tmp = out_dir / CHECKPOINT, out_dir / f".{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(out_dir / f".{CHECKPOINT}.old", ignore_errors=True)
    if final.exists() and not room_for_two(out_dir, new_bytes):
        print(f"[flexbench] checkpoint: {new_bytes / 2**30:.1f} GiB to write and no room for two copies on "
              f"{out_dir}: the previous checkpoint is removed first (an interruption now loses it)",
              file=sys.stderr, flush=True)
        shutil.rmtree(final)
    tmp.mkdir(parents=True)
    return tmp


def _finish_swap(out_dir: Path) -> Path:
    """Rename the written ``.checkpoint.tmp`` into place (the previous one via ``.checkpoint.old``)."""
    final, tmp, old = out_dir / CHECKPOINT, out_dir / f".{CHECKPOINT}.tmp", out_dir / f".{CHECKPOINT}.old"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint(out_dir: Path, progress: Progress, *, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any,
                    value_head: torch.nn.Module | None = None, states: dict[str, Any] | None = None) -> Path:
    """Write ``<out>/checkpoint/state.pt`` atomically (module docstring) and return the directory.

    ``states`` replaces the model, value-head and optimizer entries (a sharded
    run passes :func:`flexbench.train.distributed.sharded_training_state`).
    """
    parts = states if states is not None else {
        "model": trainable_state(model), "optimizer": optimizer.state_dict(),
        "value_head": value_head.state_dict() if value_head is not None else None}
    state = {"step": progress.step, "position": progress.position, **parts,
             "scheduler": scheduler.state_dict(), "rng": rng_state()}
    out_dir = Path(out_dir)
    torch.save(state, _prepare_swap(out_dir, state_bytes(state)) / STATE_FILE)
    return _finish_swap(out_dir)


def save_training_state(out_dir: Path, progress: Progress, *, model: torch.nn.Module, optimizer: Any,
                        scheduler: Any, accelerator: Any, value_head: torch.nn.Module | None = None) -> Path:
    """The resumable checkpoint of any run; a collective (every process calls it).

    Unsharded: the main process writes ``state.pt`` (:func:`save_checkpoint`).
    Sharded (FSDP2): every rank writes its shards (``torch.distributed.checkpoint``)
    and rank 0 the small ``state.pt`` (module docstring). Returns the directory
    once every process is done.
    """
    from flexbench.train.distributed import is_sharded

    out_dir = Path(out_dir)
    if not is_sharded(model):
        if accelerator.is_main_process:
            save_checkpoint(out_dir, progress, model=accelerator.unwrap_model(model), optimizer=optimizer,
                            scheduler=scheduler, value_head=value_head)
        accelerator.wait_for_everyone()
        return out_dir / CHECKPOINT
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    from flexbench.train.distributed import sharded_state, world_bytes

    shards = sharded_state(model, value_head, optimizer)
    total = world_bytes(state_bytes(shards))
    tmp = out_dir / f".{CHECKPOINT}.tmp"
    if accelerator.is_main_process:  # rank 0 prepares the directories; the others wait
        out_dir.mkdir(parents=True, exist_ok=True)
        _prepare_swap(out_dir, total)
    dist.barrier()
    dcp.save(shards, checkpoint_id=str(tmp / DCP_DIR))
    if accelerator.is_main_process:
        torch.save({"step": progress.step, "position": progress.position, "format": DCP_DIR, "sharded": True,
                    "value_head": value_head.state_dict() if value_head is not None else None,
                    "scheduler": scheduler.state_dict(), "rng": rng_state()}, tmp / STATE_FILE)
        _finish_swap(out_dir)
    dist.barrier()
    return out_dir / CHECKPOINT


def _checkpoint_path(out_dir: Path) -> Path | None:
    path = Path(out_dir) / CHECKPOINT / STATE_FILE
    if path.exists():
        return path
    old = Path(out_dir) / f".{CHECKPOINT}.old" / STATE_FILE  # interrupted between the renames
    return old if old.exists() else None


def load_checkpoint(out_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, value_head: torch.nn.Module | None = None,
                    restore: Any = None) -> Progress | None:
    """Restore the state saved by :func:`save_checkpoint` or :func:`save_training_state`; ``None`` when none.

    ``restore(state)`` replaces the loading of the model, value head and optimizer
    of a full-state sharded checkpoint (:func:`flexbench.train.distributed.restore_sharded_training_state`).
    A ``dcp`` checkpoint is read shard by shard on every rank (a collective).
    """
    path = _checkpoint_path(out_dir)
    if path is None:
        return None
    # mmap: tensors stay in the page cache, shared by the processes of a node, instead of a copy per rank
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    if state.get("format") == DCP_DIR:
        from flexbench.train.distributed import restore_sharded_state

        restore_sharded_state(model, value_head, optimizer, str(path.parent / DCP_DIR))
        if value_head is not None and state.get("value_head") is not None:
            value_head.load_state_dict(state["value_head"])
    elif restore is not None:
        restore(state)
    if state.get("format") == DCP_DIR or restore is not None:
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return Progress(int(state["step"]), int(state["position"]))
    if state.get("sharded"):
        raise ValueError(f"checkpoint {path} was written by a sharded run; resume it with the same sharding")
    params = dict(model.named_parameters())
    unknown = set(state["model"]) - set(params)
    if unknown:
        raise ValueError(f"checkpoint {path} holds parameters the model lacks: {sorted(unknown)[:3]}")
    with torch.no_grad():
        for name, tensor in state["model"].items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    if value_head is not None and state.get("value_head") is not None:
        value_head.load_state_dict(state["value_head"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return Progress(int(state["step"]), int(state["position"]))


def save_policy(out_dir: Path, model: torch.nn.Module, tokenizer: Any,
                state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Save the final policy (LoRA merged) and tokenizer to ``<out>/policy/``.

    ``state_dict`` (a sharded run's gathered weights) is saved instead of the
    model's own tensors, under the unsharded architecture's name.
    """
    target = Path(out_dir) / POLICY
    tmp = Path(out_dir) / f".{POLICY}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    to_save = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    if state_dict is None:
        to_save.save_pretrained(tmp)
    else:
        to_save.save_pretrained(tmp, state_dict=state_dict)
        _unsharded_architecture(tmp / "config.json")
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _unsharded_architecture(config_file: Path) -> None:
    """Undo FSDP2's class rename (``FSDPQwen2ForCausalLM``) in a saved ``config.json``."""
    import json

    config = json.loads(config_file.read_text())
    config["architectures"] = [a.removeprefix("FSDP") for a in config.get("architectures") or []]
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
