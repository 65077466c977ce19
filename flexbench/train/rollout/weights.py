"""The policy's full weights under the names a rollout engine loads: its checkpoint's names.

A vLLM engine loads tensors named as the Hugging Face checkpoint names them
(``model.layers.0.self_attn.q_proj.weight``). The trained policy names them
differently when wrapped:

* DDP: ``module.`` in front (unwrapped before iterating);
* FSDP / activation checkpointing / ``torch.compile``: ``_fsdp_wrapped_module.``,
  ``_checkpoint_wrapped_module.``, ``_orig_mod.`` inside the name;
* PEFT LoRA: ``base_model.model.`` in front, the frozen weight under
  ``<layer>.base_layer.weight``, the factors under ``<layer>.lora_A.<adapter>.weight``
  and ``lora_B``, which the engine does not have; ``modules_to_save`` copies
  under ``<module>.modules_to_save.<adapter>.`` (the original under
  ``original_module``).

:func:`engine_name` maps one name (``None``: not pushed) and
:func:`policy_weights` yields every tensor to push, the LoRA layers merged on
the fly as ``W + scale * B A`` (PEFT's ``get_delta_weight``, which handles
``fan_in_fan_out`` and the scale) without modifying the policy, unlike TRL's
``merge_adapter``/``unmerge_adapter`` round trip, which rewrites the base weights
in place twice per push. :func:`full_tensor` is the FSDP hook: under FSDP2
(``sharding=fsdp|zero2``, parameters are ``DTensor`` shards) each parameter is
gathered one at a time as it is pushed, so every rank iterates in step and
loads the full weights into its own colocated engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flexbench.errors import FlexBenchError

PEFT_PREFIX = "base_model.model."
WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")
_SAVED_COPY = re.compile(r"\.modules_to_save\.[^.]+\.")
_NOT_PUSHED = re.compile(r"\.lora_[A-Za-z_]+\.|\.original_module\.")


def engine_name(name: str) -> str | None:
    """Checkpoint name of a policy parameter, or ``None`` for one the engine has no slot for (LoRA factors)."""
    for part in WRAPPER_PARTS:
        name = name.replace(part, "")
    name = name.removeprefix("module.").removeprefix(PEFT_PREFIX)
    if _NOT_PUSHED.search(f".{name}."):
        return None
    return _SAVED_COPY.sub(".", name.replace(".base_layer.", "."))


def unwrap(model: Any) -> Any:
    """The model inside a DDP wrapper (``.module``), else ``model``."""
    import torch

    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def lora_layers(model: Any) -> dict[str, Any]:
    """PEFT LoRA layers of ``model`` by module name (empty without PEFT)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return {}
    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    for name, layer in layers.items():
        if any(bool(v) for v in getattr(layer, "use_dora", {}).values()):
            raise FlexBenchError(f"LoRA layer {name} uses DoRA; pushing DoRA weights to the rollout engine is not "
                                 "supported (train without use_dora, or use engine=transformers)")
    return layers


def lora_delta(layer: Any) -> Any:
    """``sum_a scale_a * B_a A_a`` over the layer's active, not yet merged adapters (``None`` when there is none)."""
    if getattr(layer, "disable_adapters", False):
        return None
    delta = None
    for adapter in layer.active_adapters:
        if adapter in layer.merged_adapters or adapter not in layer.lora_A:
            continue
        d = layer.get_delta_weight(adapter)
        delta = d if delta is None else delta + d
    return delta


def policy_weights(model: Any, dtype: Any = None) -> Iterator[tuple[str, Any]]:
    """``(checkpoint name, full tensor)`` for every parameter the engine loads, LoRA merged.

    ``dtype`` (the engine's, e.g. ``torch.bfloat16``): floating tensors are cast
    before an FSDP shard is gathered (half the bytes gathered and held for an
    fp32 master copy), and LoRA layers after the fp32 merge ``W + scale * B A``.

    Tied parameters come under every name they have (SmolLM2's and Qwen2.5's
    ``lm_head.weight`` is ``model.embed_tokens.weight``), so each engine layer
    that holds one reloads it and re-runs its own post-processing: vLLM's CPU
    build keeps a repacked copy of the LM head, which a push of the embedding
    alone leaves stale (measured: the first-token log-probs then differ by ~1).
    Unmerged tensors are views of the live parameters (no copy): push them
    before the next optimizer step. Sharded (FSDP2) parameters are gathered one by one (:func:`full_tensor`).
    """
    import torch

    model = unwrap(model)
    layers = lora_layers(model)
    with torch.no_grad():
        for name, param in model.named_parameters(remove_duplicate=False):
            target = engine_name(name)
            if target is None:
                continue
            owner, _, leaf = name.rpartition(".base_layer.")
            delta = lora_delta(layers[owner]) if owner in layers and leaf == "weight" else None
            if delta is None:
                yield target, full_tensor(cast(param.detach(), dtype))
                continue
            tensor = full_tensor(param.detach())
            yield target, cast(tensor + full_tensor(delta).to(tensor.dtype), dtype)


def cast(tensor: Any, dtype: Any) -> Any:
    """``tensor`` in ``dtype`` when both are floating point (``None``: unchanged; integer buffers never cast)."""
    if dtype is None or not tensor.is_floating_point() or tensor.dtype == dtype:
        return tensor
    return tensor.to(dtype)


def full_tensor(tensor: Any) -> Any:
    """Hook for sharded training: the whole tensor of an FSDP2 ``DTensor`` shard (``full_tensor()``,
    a collective every rank must join in step), other tensors as they are."""
    full = getattr(tensor, "full_tensor", None)
    return full() if callable(full) else tensor
