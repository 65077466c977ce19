"""The memory plan: per-GPU memory of a training run, estimated from the model's config before loading it.

:func:`plan_memory` needs only the architecture (``config.json``: shipped for the
paper and CPU models under ``model_configs/``, else a local directory or the
hub cache through ``AutoConfig``; no weights). With ``P`` parameters, ``P_t``
trainable ones (all, or the LoRA adapters), ``N`` processes, ``s = N`` under
``sharding=fsdp|zero2`` (else 1), ``c`` the compute dtype's bytes (2 under
bf16 autocast, 4 in fp32), ``b`` the micro-batch, ``S = plan_prompt_tokens +
max_new_tokens`` tokens per sequence, ``T = max_new_tokens``, ``V`` the vocabulary,
``L`` layers of hidden size ``h``, MLP size ``i``, ``kv`` key/value width::

    policy weights     4 P / s               fp32 master weights (the trainer keeps fp32, autocasts to bf16)
    gradients          4 P_t / s             update phase; every phase under DDP (bucket views persist)
    optimizer          8 P_t / s             AdamW: two fp32 states; adamw8bit: 2 P_t
    reference          c P                   frozen copy for the KL term; none with LoRA (adapters off) or kl_coef 0
    gathered weights   c (2 P_layer + P_root) per step under fsdp, c P under zero2 and while generating
    autocast copies    c P                   bf16 casts of the weights saved for backward (no checkpointing)
    activations        b S (L a + 8.5 h)     a = 30 h + 8 i + 4 kv + 4 heads + 8 bytes/token (bf16; fp32:
                                             32 h + 16 i + 8 kv); checkpointed: b S (4 L h + 2 a + 8.5 h)
    logits             b (T + 1) V (4 + 8 [entropy] + 4 + 2 [bf16])   fp32 log-softmax, entropy, backward
    KV cache           G^2 S L kv (k + c)    HF ``generate``: G prompts x G samples per call; keys k = 4 B
                                             under autocast (rotary in the fp32 residual stream), else c
    vLLM share         vllm_gpu_memory x card   (engine=vllm; with vllm_sleep only while generating)
    AdamW temporary    4 P_t / s             CUDA: foreach AdamW's ``sqrt(v)`` over all parameters (step
                                             phase); CPU: the for-loop kernel's 2 x the largest parameter
    NCCL buffers       0.5 GiB + FSDP's      communicators (world > 1 on CUDA) and FSDP's fp32
                       4 x 2 P_layer         reduce-scatter input of two layers

Under HSDP (``FLEXBENCH_FSDP_SHARD_SIZE=n``) ``s = n``; with ``FLEXBENCH_FSDP_NO_SYNC=1`` the
gradients are unsharded (``4 P_t``) until the last micro-batch of each optimizer step.
    context/headroom   1 GiB CUDA context + 10 % of the peak for fragmentation

The per-layer activation coefficients were measured (saved-tensor hooks on Llama
and Qwen2 layers on CPU, fp32 and bf16 autocast; ``tests/train/test_memory.py``
checks them against a real forward). The plan is the largest of four phases:
``rollout`` (generation), ``logprob`` (reference and old log-probs, no grad),
``update`` (forward + backward of one micro-batch) and ``step`` (the optimizer
step: activations freed, gradients and the optimizer's temporaries alive).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.train.config import OptimizerKind, Precision, RolloutEngine, Sharding, TrainConfig

GIB = 2**30
CONFIG_DIR = Path(__file__).with_name("model_configs")
SHIPPED = {"qwen/qwen2.5-3b-instruct": "Qwen2.5-3B-Instruct.json", "qwen2.5-3b-instruct": "Qwen2.5-3B-Instruct.json",
           "smollm2": "SmolLM2-135M-Instruct.json", "huggingfacetb/smollm2-135m-instruct": "SmolLM2-135M-Instruct.json",
           "smollm2-135m-instruct": "SmolLM2-135M-Instruct.json"}
LLAMA_FAMILY = frozenset({"llama", "qwen2", "mistral", "qwen3"})
PHASES = ("rollout", "logprob", "update", "step")
NCCL_BUFFERS = 0.5 * GIB  # NCCL communicators' buffers per process (NCCL_BUFFSIZE 4 MiB x channels x peers)
CUDA_CONTEXT = 1.0 * GIB
FRAGMENTATION = 0.10
DEFAULT_VLLM_SHARE = 0.3


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs of an architecture: sizes and parameter counts."""

    name: str
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    params: int
    layer_params: int

    @property
    def kv_width(self) -> int:
        """Width of one of the key/value projections: ``kv_heads * head_dim``."""
        return self.kv_heads * self.head_dim

    @property
    def root_params(self) -> int:
        """Parameters outside the decoder layers (embeddings, output layer, final norm)."""
        return self.params - self.layers * self.layer_params

    def lora_params(self, r: int, targets: tuple[str, ...]) -> int:
        """Adapter parameters: ``r (d_in + d_out)`` per targeted projection per layer."""
        h, i, q, kv = self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_width
        dims = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
        return self.layers * sum(r * sum(dims[t]) for t in targets if t in dims)


def model_config(ref: str) -> dict[str, Any]:
    """``config.json`` of ``ref``: a local directory, a shipped config, or ``AutoConfig`` (hub cache)."""
    path = Path(ref).expanduser()
    if (path / "config.json").is_file():
        return json.loads((path / "config.json").read_text())
    key = ref.strip().lower()
    if key in SHIPPED:
        return json.loads((CONFIG_DIR / SHIPPED[key]).read_text())
    from transformers import AutoConfig

    from flexbench.llm.models import offline

    try:
        return AutoConfig.from_pretrained(ref, local_files_only=offline()).to_dict()
    except (OSError, ValueError) as exc:
        raise FlexBenchError(f"memory plan: no config for model {ref!r} ({type(exc).__name__}); pass a local "
                             f"directory, or --set memory_check=false to skip the plan") from None


def model_shape(ref: str) -> ModelShape:
    """The :class:`ModelShape` of ``ref`` (see :func:`model_config`)."""
    return shape_from_config(model_config(ref), ref)


def shape_from_config(config: dict[str, Any], name: str) -> ModelShape:
    """The :class:`ModelShape` of a ``config.json`` mapping (Llama-family counts exact, others via meta device)."""
    d = config.get("text_config") or config
    h, heads = int(d["hidden_size"]), int(d["num_attention_heads"])
    head_dim = int(d.get("head_dim") or h // heads)
    kv = int(d.get("num_key_value_heads") or heads)
    shape = {"name": name, "model_type": str(d.get("model_type", "?")), "hidden": h,
                 "intermediate": int(d["intermediate_size"]), "layers": int(d["num_hidden_layers"]), "heads": heads,
                 "kv_heads": kv, "head_dim": head_dim, "vocab": int(d["vocab_size"]),
                 "tied": bool(d.get("tie_word_embeddings", False))}
    counts = _llama_counts(d, shape) if shape["model_type"] in LLAMA_FAMILY else _meta_counts(d, shape["layers"])
    return ModelShape(**shape, params=counts[0], layer_params=counts[1])


def _llama_counts(d: dict[str, Any], s: dict[str, Any]) -> tuple[int, int]:
    """Exact parameter counts of Llama-family decoders (tested against the instantiated models)."""
    h, i, q, kv = s["hidden"], s["intermediate"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    qkv_bias = s["model_type"] == "qwen2" or bool(d.get("attention_bias", False))
    o_bias = s["model_type"] != "qwen2" and bool(d.get("attention_bias", False))
    layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h
    layer += (q + 2 * kv) * qkv_bias + h * o_bias + (2 * i + h) * bool(d.get("mlp_bias", False))
    layer += 2 * s["head_dim"] * (s["model_type"] == "qwen3")  # q_norm, k_norm
    root = s["vocab"] * h * (1 if s["tied"] else 2) + h
    return root + s["layers"] * layer, layer


def _meta_counts(d: dict[str, Any], layers: int) -> tuple[int, int]:
    """Parameter counts of any causal LM, instantiated on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**d)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    blocks = next((m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == layers), None)
    per_layer = sum(p.numel() for p in blocks[0].parameters()) if blocks is not None else total // max(1, layers)
    return total, per_layer


# ----------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Setup:
    """Where the run goes: processes, memory per device (bytes; ``None`` unknown), device kind, engine."""

    world: int = 1
    card_bytes: float | None = None
    device: str = "cuda"
    engine: RolloutEngine = RolloutEngine.TRANSFORMERS


@dataclass(frozen=True)
class Component:
    """One row of the plan: bytes per device in the phases it is alive."""

    name: str
    bytes: float
    phases: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class MemoryPlan:
    """The components of a run and their per-phase totals (module docstring)."""

    model: ModelShape
    setup: Setup
    summary: str
    components: tuple[Component, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def phase_bytes(self, phase: str) -> float:
        """Sum of the components alive in ``phase``."""
        return sum(c.bytes for c in self.components if phase in c.phases)

    @property
    def peak_phase(self) -> str:
        """The phase with the most memory."""
        return max(PHASES, key=self.phase_bytes)

    @property
    def headroom(self) -> float:
        """CUDA context (GPU only) plus allocator fragmentation on top of the peak phase."""
        return (CUDA_CONTEXT if self.setup.device == "cuda" else 0.0) + FRAGMENTATION * self.phase_bytes(
            self.peak_phase)

    @property
    def total(self) -> float:
        """Planned peak per device: the peak phase plus :attr:`headroom` (bytes)."""
        return self.phase_bytes(self.peak_phase) + self.headroom

    @property
    def fits(self) -> bool | None:
        """Whether :attr:`total` fits the device; ``None`` when its memory is unknown."""
        return None if self.setup.card_bytes is None else self.total <= self.setup.card_bytes


def resolve_engine(cfg: TrainConfig, *, gpu: bool = True) -> RolloutEngine:
    """The rollout engine ``cfg`` gets: ``auto`` is vLLM when installed, on GPU and unconstrained."""
    if cfg.engine is not RolloutEngine.AUTO:
        return cfg.engine
    import importlib.util

    usable = gpu and not cfg.constrained and importlib.util.find_spec("vllm") is not None
    return RolloutEngine.VLLM if usable else RolloutEngine.TRANSFORMERS


def plan_memory(cfg: TrainConfig, method: Any, setup: Setup, shape: ModelShape | None = None) -> MemoryPlan:
    """The memory plan of training ``method`` (a :class:`~flexbench.train.methods.MethodSpec`) with ``cfg``."""
    from flexbench.train.methods import Algorithm

    m = shape or model_shape(cfg.model)
    bf16 = cfg.precision is Precision.BF16 or (cfg.precision is Precision.AUTO and setup.device == "cuda")
    c = 2 if bf16 else 4
    sharded = cfg.sharding is not Sharding.NONE and setup.world > 1
    s = shard_group(setup.world) if sharded else 1
    trainable = m.lora_params(cfg.lora_r, cfg.lora_targets) if cfg.lora else m.params
    sft_only = method.algorithm is Algorithm.SFT
    rows = [Component("policy weights (fp32 master)", 4 * (m.params / s if not cfg.lora else m.params + trainable),
                      PHASES, f"{_count(m.params)} x 4 B" + (f" / {s}" if s > 1 else "")),
            Component("gradients (fp32)", 4 * trainable / (1 if sharded and _deferred_sync() else s),
                      PHASES if setup.world > 1 and not sharded else ("update", "step"),
                      f"{_count(trainable)} trainable x 4 B" + (f" / {s}" if s > 1 else "") +
                      (", DDP buckets persist" if setup.world > 1 and not sharded else ""))]
    per_state = 8 if cfg.optimizer is OptimizerKind.ADAMW else 2
    rows.append(Component(f"optimizer ({cfg.optimizer.value})", per_state * trainable / s, PHASES,
                          f"{per_state} B x trainable" + (f" / {s}" if s > 1 else "")))
    rows += _step_rows(cfg, m, trainable / s, setup)
    rows += _communication_rows(m, setup, sharded)
    if not sft_only and cfg.kl_coef > 0 and not cfg.lora:
        rows.append(Component("reference model (frozen)", c * m.params, PHASES, f"{c} B x params"))
    rows += _gathered(cfg, m, c, sharded)
    rows += _activations(cfg, m, c, bf16, sharded)
    if not sft_only:
        rows += _rollout_rows(cfg, m, c, setup)
    notes = _notes(cfg, setup, sharded)
    mode = f"LoRA r={cfg.lora_r}" if cfg.lora else "full-parameter"
    where = f"{cfg.sharding.value} over {setup.world}" if sharded else (
        f"DDP x {setup.world}" if setup.world > 1 else "1 process")
    summary = (f"{m.name}: {_count(m.params)} params, {mode}, {where}, {'bf16' if bf16 else 'fp32'}, "
               f"micro-batch {cfg.micro_batch_size} x {cfg.plan_prompt_tokens}+{cfg.max_new_tokens} tokens, "
               f"gradient checkpointing {'on' if cfg.gradient_checkpointing else 'off'}, "
               f"engine {setup.engine.value if not sft_only else 'none (SFT)'}")
    return MemoryPlan(m, setup, summary, tuple(r for r in rows if r.bytes > 0), notes)


def shard_group(world: int) -> int:
    """Processes one copy of the weights is sharded over: ``FLEXBENCH_FSDP_SHARD_SIZE`` (HSDP), else ``world``."""
    import os

    size = int(os.environ.get("FLEXBENCH_FSDP_SHARD_SIZE", "0") or 0)
    return size if 0 < size <= world else world


def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to 1/true/yes."""
    import os

    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _deferred_sync() -> bool:
    """``FLEXBENCH_FSDP_NO_SYNC=1``: FSDP2 accumulates unsharded gradients until the last micro-batch."""
    return env_flag("FLEXBENCH_FSDP_NO_SYNC")


def _step_rows(cfg: TrainConfig, m: ModelShape, trainable: float, setup: Setup) -> list[Component]:
    """The optimizer step's temporary: foreach AdamW (CUDA default) holds ``sqrt(v)`` for all parameters at once;
    the CPU for-loop kernel two copies of the largest parameter (the embedding)."""
    if cfg.optimizer is not OptimizerKind.ADAMW:
        return []
    if setup.device == "cuda":
        return [Component("AdamW foreach temporary", 4 * trainable, ("step",), "sqrt(exp_avg_sq), fp32")]
    largest = m.vocab * m.hidden if not cfg.lora else 0
    return [Component("AdamW temporaries", 2 * 4 * largest, ("step",), "2 x the largest parameter, fp32")]


def _communication_rows(m: ModelShape, setup: Setup, sharded: bool) -> list[Component]:
    """NCCL's buffers per process, and FSDP's fp32 reduce-scatter inputs (two layers' unsharded gradients)."""
    if setup.world < 2 or setup.device != "cuda":
        return []
    rows = [Component("NCCL buffers", NCCL_BUFFERS, PHASES, "communicators, 0.5 GiB")]
    if sharded:
        rows.append(Component("reduce-scatter buffers (FSDP)", 4 * 2 * m.layer_params, ("update",),
                              "fp32 gradients of 2 layers"))
    return rows


def _count(n: float) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _gathered(cfg: TrainConfig, m: ModelShape, c: int, sharded: bool) -> list[Component]:
    if not sharded:
        return []
    layer_units = m.params if cfg.sharding is Sharding.ZERO2 else 2 * m.layer_params + m.root_params
    return [Component("gathered weights (FSDP, training)", c * layer_units, ("update",),
                      "all layers" if cfg.sharding is Sharding.ZERO2 else "2 layers + embeddings"),
            Component("gathered weights (generation)", c * m.params, ("rollout", "logprob"),
                      "full weights gathered for decoding")]


def layer_activation_bytes(m: ModelShape, bf16: bool) -> float:
    """Bytes per token saved for backward by one decoder layer (measured coefficients, module docstring)."""
    if bf16:
        return 30 * m.hidden + 8 * m.intermediate + 4 * m.kv_width + 4 * m.heads + 8
    return 32 * m.hidden + 16 * m.intermediate + 8 * m.kv_width + 4 * m.heads + 8


def activation_bytes(cfg: TrainConfig, m: ModelShape, bf16: bool, tokens: int) -> float:
    """Activations of a forward + backward over ``tokens`` tokens (with or without checkpointing)."""
    a = layer_activation_bytes(m, bf16)
    base = (8.5 if bf16 else 12.5) * m.hidden
    if cfg.lora:
        a += len(cfg.lora_targets) * (3 if bf16 else 5) * m.hidden  # dropout mask and dropped input
    if cfg.gradient_checkpointing:
        return tokens * (4 * m.layers * m.hidden + 2 * a + base)  # layer inputs, one layer recomputed + grads
    return tokens * (m.layers * a + a + base)


def _activations(cfg: TrainConfig, m: ModelShape, c: int, bf16: bool, sharded: bool) -> list[Component]:
    b, seq, t = cfg.micro_batch_size, cfg.plan_prompt_tokens + cfg.max_new_tokens, cfg.max_new_tokens
    gc = "checkpointed" if cfg.gradient_checkpointing else "no checkpointing"
    rows = [Component(f"activations ({gc})", activation_bytes(cfg, m, bf16, b * seq), ("update",),
                      f"{b} x {seq} tokens, {m.layers} layers"),
            Component("attention mask", b * seq * seq * c, ("update", "logprob"), "[b, 1, S, S]")]
    if bf16 and not sharded:
        kept = m.layer_params if cfg.gradient_checkpointing else m.params
        rows.append(Component("autocast weight copies (bf16)", 2 * kept, ("update",),
                              "one layer" if cfg.gradient_checkpointing else "all weights, saved for backward"))
    per_logit = 4 + (8 if cfg.entropy_coef > 0 else 0) + 4 + (2 if bf16 else 0)
    rows.append(Component("logits (training)", b * (t + 1) * m.vocab * per_logit, ("update",),
                          f"{b} x {t + 1} x {m.vocab:,} x {per_logit} B"))
    rows.append(Component("logits (log-probs, no grad)", b * (t + 1) * m.vocab * (c + 8), ("logprob",),
                          f"{b} x {t + 1} x {m.vocab:,} x {c + 8} B"))
    return rows


def _rollout_rows(cfg: TrainConfig, m: ModelShape, c: int, setup: Setup) -> list[Component]:
    seq = cfg.plan_prompt_tokens + cfg.max_new_tokens
    if setup.engine is RolloutEngine.VLLM:
        share = float(getattr(cfg, "vllm_gpu_memory", DEFAULT_VLLM_SHARE))
        phases = ("rollout",) if getattr(cfg, "vllm_sleep", False) else PHASES  # asleep after the rollouts
        if setup.card_bytes is None:
            return []
        return [Component("vLLM engine share", share * setup.card_bytes, phases, f"{share:.2f} x card")]
    seqs = cfg.group_size * cfg.group_size  # G prompts per generate call, G samples each
    key_bytes = 4 if c == 2 and cfg.sharding is Sharding.NONE else c  # autocast: keys rotated in fp32
    kv = seqs * seq * m.layers * m.kv_width * (key_bytes + c)
    prefill = seqs * cfg.plan_prompt_tokens * (3 * m.intermediate + 4 * m.hidden) * c
    return [Component("KV cache (HF generate)", kv, ("rollout",), f"{seqs} sequences x {seq} tokens"),
            Component("prefill transient (HF generate)", prefill, ("rollout",), "one layer's MLP over the prompts")]


def _notes(cfg: TrainConfig, setup: Setup, sharded: bool) -> tuple[str, ...]:
    notes = []
    if cfg.sharding is not Sharding.NONE and not sharded:
        notes.append(f"sharding={cfg.sharding.value} divides nothing over 1 process: launch with "
                     f"`accelerate launch --num_processes N`")
    if setup.engine is RolloutEngine.VLLM and setup.card_bytes is None:
        notes.append(f"vLLM takes vllm_gpu_memory (default {DEFAULT_VLLM_SHARE}) of the card, not counted: "
                     f"the card's memory is unknown")
    return tuple(notes)


# ---------------------------------------------------------------------------------------- suggestions
def suggestions(cfg: TrainConfig, method: Any, setup: Setup, shape: ModelShape) -> list[str]:
    """Concrete changes that make the plan fit ``setup``'s card, each with its planned peak."""
    if setup.card_bytes is None:
        return []
    out = []

    def fits(label: str, changed: TrainConfig, where: Setup = setup) -> bool:
        plan = plan_memory(changed, method, where, shape)
        if plan.fits:
            out.append(f"{label} ({plan.total / GIB:.1f} GiB)")
        return bool(plan.fits)

    if not cfg.lora:
        for n in (2, 4, 8):
            if n >= setup.world and fits(f"--set sharding=fsdp on {n} GPUs",
                                         replace(cfg, sharding=Sharding.FSDP), replace(setup, world=n)):
                break
        fits("--set lora=true", replace(cfg, lora=True, sharding=Sharding.NONE))
    if setup.engine is RolloutEngine.VLLM:
        for share in (0.2, 0.1):
            if fits(f"--set vllm_gpu_memory={share}", _with(cfg, vllm_gpu_memory=share)):
                break
    if cfg.optimizer is OptimizerKind.ADAMW and cfg.sharding is Sharding.NONE:
        fits("--set optimizer=adamw8bit", replace(cfg, optimizer=OptimizerKind.ADAMW8BIT))
    if not cfg.gradient_checkpointing:
        fits("--set gradient_checkpointing=true", replace(cfg, gradient_checkpointing=True))
    if cfg.micro_batch_size > 1:
        fits("--set micro_batch_size=1", replace(cfg, micro_batch_size=1))
    return out


def _with(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """``cfg`` with the changes its fields allow (options another module may not have added yet)."""
    names = {f for f in cfg.__dataclass_fields__}
    return replace(cfg, **{k: v for k, v in changes.items() if k in names})


def check_fits(plan: MemoryPlan, cfg: TrainConfig, method: Any) -> None:
    """Raise a one-line :class:`FlexBenchError` with suggestions when ``plan`` does not fit its device."""
    if plan.fits is not False:
        return
    tips = suggestions(cfg, method, plan.setup, plan.model)
    where = "GPU" if plan.setup.device == "cuda" else "RAM"
    raise FlexBenchError(
        f"memory plan: {plan.total / GIB:.1f} GiB per process does not fit the {plan.setup.card_bytes / GIB:.1f} "
        f"GiB {where} ({plan.summary}); try {'; '.join(tips) if tips else 'a smaller model or more GPUs'}; "
        f"or --set memory_check=false to start anyway")
