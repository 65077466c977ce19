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
                    value_head: torch.nn.Module | None = None) -> Path:
    """Write ``<out>/checkpoint/state.pt`` atomically and return the directory."""
    final = Path(out_dir) / CHECKPOINT
    tmp = Path(out_dir) / f".{CHECKPOINT}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({
        "step": progress.step, "position": progress.position,
        "model": trainable_state(model),
        "value_head": value_head.state_dict() if value_head is not None else None,
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
    }, tmp / STATE_FILE)
    old = Path(out_dir) / f".{CHECKPOINT}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(out_dir: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, value_head: torch.nn.Module | None = None) -> Progress | None:
    """Restore the state saved by :func:`save_checkpoint`; ``None`` when there is none."""
    path = Path(out_dir) / CHECKPOINT / STATE_FILE
    if not path.exists():
        old = Path(out_dir) / f".{CHECKPOINT}.old" / STATE_FILE  # interrupted between the renames
        if not old.exists():
            return None
        path = old
    state = torch.load(path, map_location="cpu", weights_only=False)
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


def save_policy(out_dir: Path, model: torch.nn.Module, tokenizer: Any) -> Path:
    """Save the final policy (LoRA merged) and tokenizer to ``<out>/policy/``."""
    target = Path(out_dir) / POLICY
    tmp = Path(out_dir) / f".{POLICY}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    to_save = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    to_save.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
