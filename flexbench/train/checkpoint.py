"""Resumable training state and the saved policy.

``<out>/checkpoint/state.pt`` holds everything an interrupted run needs to
continue bit-for-bit on CPU: the trainable parameters (all weights for
full-parameter training, the adapters under LoRA), the value head, the
optimizer and scheduler states, the Python/NumPy/torch RNG states, the step
count and the data-order position. It is written to a temporary directory and
renamed into place, so an interruption during saving leaves the previous
checkpoint intact.

``<out>/policy/`` is the final model in ``save_pretrained`` layout (LoRA
adapters merged), with its tokenizer: what
:class:`~flexbench.train.policy_ranker.TrainedPolicyRanker` loads.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT = "checkpoint"
POLICY = "policy"
STATE_FILE = "state.pt"


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


def save_checkpoint(out_dir: Path, progress: Progress, *, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any,
                    value_head: torch.nn.Module | None = None, states: dict[str, Any] | None = None) -> Path:
    """Write ``<out>/checkpoint/state.pt`` atomically and return the directory.

    ``states`` replaces the model, value-head and optimizer entries (a sharded
    run passes :func:`flexbench.train.distributed.sharded_training_state`).
    """
    final = Path(out_dir) / CHECKPOINT
    tmp = Path(out_dir) / f".{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parts = states if states is not None else {
        "model": trainable_state(model), "optimizer": optimizer.state_dict(),
        "value_head": value_head.state_dict() if value_head is not None else None}
    torch.save({"step": progress.step, "position": progress.position, **parts,
                "scheduler": scheduler.state_dict(), "rng": rng_state()}, tmp / STATE_FILE)
    old = Path(out_dir) / f".{CHECKPOINT}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(out_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, value_head: torch.nn.Module | None = None,
                    restore: Any = None) -> Progress | None:
    """Restore the state saved by :func:`save_checkpoint`; ``None`` when there is none.

    ``restore(state)`` replaces the loading of the model, value head and optimizer
    (a sharded run passes :func:`flexbench.train.distributed.restore_sharded_training_state`).
    """
    path = Path(out_dir) / CHECKPOINT / STATE_FILE
    if not path.exists():
        old = Path(out_dir) / f".{CHECKPOINT}.old" / STATE_FILE  # interrupted between the renames
        if not old.exists():
            return None
        path = old
    state = torch.load(path, map_location="cpu", weights_only=False)
    if restore is not None:
        restore(state)
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
