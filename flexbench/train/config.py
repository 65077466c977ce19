"""Configuration of policy training: one frozen dataclass, validated on construction.

Algorithm defaults follow SPEC section 6 and the paper's Appendix C: PPO-clip
``epsilon = 0.2``, k3 KL to the frozen reference with coefficient ``0.01``,
entropy bonus ``0.005``, learning rate ``1e-6``, ``G = 8`` rollouts per prompt,
full-parameter training. TALLRec's LoRA settings (r 8, alpha 16, dropout 0.05,
``q_proj``/``v_proj``, lr 1e-4) are the ``lora_*`` fields.

Size defaults (steps, prompts per step, tokens, validation instances) are the
CPU defaults: ``flexbench train flexrec --dataset kuairec`` finishes in minutes
with SmolLM2-135M. On CPU rollouts are constrained to permutations of the
candidate labels by default (SmolLM2-135M sampled at temperature 1 almost
never emits a parseable list, so no item gets credit); the paper preset
decodes freely, as the paper does. The paper preset (``preset: paper`` or
``--config flexbench/train/presets/paper.json``) switches to
Qwen/Qwen2.5-3B-Instruct and GPU-sized settings.

Options from ``--config``/``--set`` map one-to-one onto the field names and are
converted by the field types (:meth:`TrainConfig.from_options`); unknown keys
are an error with suggestions. A preset sets only what it names: method
defaults (Rec-R1's 25 SFT warm-up steps, none for the others) stay unless an
option, or a preset's ``methods.<name>`` section, names them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.llm.labels import PromptMode
from flexbench.options import parse_options, suggest

PRESET_DIR = Path(__file__).with_name("presets")


class Precision(StrEnum):
    """Mixed precision: ``auto`` = bf16 autocast on a CUDA GPU, fp32 on CPU."""

    AUTO = "auto"
    NO = "no"
    BF16 = "bf16"


class Sharding(StrEnum):
    """How full-parameter training spreads its state over processes (:mod:`flexbench.train.distributed`).

    ``none``: DDP, every process holds all weights, gradients and optimizer state.
    ``fsdp``: FSDP2 full sharding (ZeRO-3): weights, gradients and optimizer state
    divided by the number of processes; layers gathered one at a time.
    ``zero2``: FSDP2 without resharding after forward (ZeRO-2-like): gradients and
    optimizer state divided, the bf16 weights stay gathered through forward and backward.
    """

    NONE = "none"
    FSDP = "fsdp"
    ZERO2 = "zero2"


class UnratedGains(StrEnum):
    """Training gain of an engagement candidate the user's training interactions do not hold (README, Deviations).

    ``auto``: gain 0 on datasets whose labels give a never-rated candidate gain 0
    (:data:`flexbench.vocabulary.UNRATED_IS_ZERO`: ML-1M, where every training
    candidate is then labelled), the method's imputation (critic, KNN) elsewhere;
    ``impute``: always the method's imputation (the paper's text); ``zero``: always 0.
    """

    AUTO = "auto"
    IMPUTE = "impute"
    ZERO = "zero"


class OptimizerKind(StrEnum):
    """``adamw``: torch AdamW, two fp32 states (8 B/parameter); ``adamw8bit``: bitsandbytes AdamW8bit (2 B)."""

    ADAMW = "adamw"
    ADAMW8BIT = "adamw8bit"


class RolloutEngine(StrEnum):
    """Rollout backend: ``auto`` = vLLM when installed and on GPU, else transformers ``generate``."""

    AUTO = "auto"
    TRANSFORMERS = "transformers"
    VLLM = "vllm"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a policy-training run (RL and SFT).

    One *step* is one optimizer update for SFT, and for RL one batch of
    ``prompts_per_step * group_size`` rollouts followed by ``ppo_epochs`` passes
    of updates over it, split into ``mini_batches`` optimizer steps; each
    optimizer step accumulates gradients over micro-batches of
    ``micro_batch_size`` sequences. With ``ppo_epochs = mini_batches = 1`` the
    update is on-policy and the PPO ratio is exactly 1.
    """

    model: str = "smollm2"
    steps: int = 4
    prompts_per_step: int = 1
    group_size: int = 4
    max_new_tokens: int = 160
    temperature: float = 1.0
    top_p: float = 1.0
    constrained: bool = True  # CPU default: small models rarely emit a parseable list when sampling
    prompt_mode: PromptMode = PromptMode.IDS  # reason: a short rationale, then 'Final ranking:' and the list
    prompt_item_chars: int = 300  # characters of item text shown per candidate and history item
    lr: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    clip_eps: float = 0.2
    kl_coef: float = 0.01
    entropy_coef: float = 0.005
    ppo_epochs: int = 1
    mini_batches: int = 1
    micro_batch_size: int = 2
    shared_prefix: bool = True  # score a prompt's rollouts in one row over one copy of the prompt
    reward_cutoff: int | None = 10  # training NDCG cutoff (SPEC 6); None: the whole list
    uncertainty_clip: tuple[float, float] = (0.25, 4.0)
    adv_eps: float = 1e-6
    # PPO (value head + GAE) for the Table 7 variants
    gae_gamma: float = 1.0
    gae_lambda: float = 0.95
    value_coef: float = 0.1
    value_clip: float = 0.2
    # SFT (TALLRec, the SFT baseline, Rec-R1 warm-up)
    sft_lr: float = 1e-5
    sft_batch_size: int = 2
    sft_warmup_steps: int | None = None  # None: the method's own (Rec-R1: 25)
    # parameters and precision
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    precision: Precision = Precision.AUTO
    gradient_checkpointing: bool = False
    engine: RolloutEngine = RolloutEngine.AUTO
    vllm_gpu_memory: float = 0.3  # engine=vllm: the engine's share of GPU memory (of RAM on CPU); docs/GPU.md
    vllm_sleep: bool = False  # engine=vllm: free the engine's memory during the update (vLLM sleep mode, GPU only)
    # memory: sharding, optimizer state, the pre-flight memory plan (flexbench.train.memory)
    sharding: Sharding = Sharding.NONE
    optimizer: OptimizerKind = OptimizerKind.ADAMW
    plan_prompt_tokens: int = 1500  # prompt length the plan assumes: K = 30 prompts measure 1,240-1,470 tokens
    memory_check: bool = True  # refuse to start when the plan does not fit the GPU
    # data, validation, checkpoints
    train_instances: int | None = None
    eval_every: int = 2
    eval_instances: int = 4
    eval_max_new_tokens: int | None = None
    save_every: int = 2
    auto_critic: bool = True
    unrated_gains: UnratedGains = UnratedGains.AUTO  # unobserved engagement candidates: see UnratedGains
    cpu_threads: int | None = None  # torch.set_num_threads on CPU; 1 is fastest on a busy shared machine
    seed: int = 0

    def __post_init__(self) -> None:
        _set(self, "precision", Precision(self.precision))
        _set(self, "engine", RolloutEngine(self.engine))
        _set(self, "prompt_mode", PromptMode(self.prompt_mode))
        if self.prompt_item_chars < 20:
            raise FlexBenchError("train option prompt_item_chars must be >= 20 (shorter cannot show an item)")
        if self.constrained and self.prompt_mode is PromptMode.REASON:
            raise FlexBenchError("prompt_mode=reason needs free decoding: constrained rollouts leave no room for a "
                                 "rationale (--set constrained=false)")
        _set(self, "sharding", Sharding(self.sharding))
        _set(self, "optimizer", OptimizerKind(self.optimizer))
        _set(self, "unrated_gains", UnratedGains(self.unrated_gains))
        _set(self, "lora_targets", tuple(self.lora_targets))
        _set(self, "uncertainty_clip", tuple(float(v) for v in self.uncertainty_clip))
        for name in ("steps", "prompts_per_step", "group_size", "max_new_tokens", "ppo_epochs",
                     "mini_batches", "micro_batch_size", "sft_batch_size", "eval_every",
                     "eval_instances", "save_every", "lora_r", "lora_alpha"):
            if int(getattr(self, name)) < 1:
                raise FlexBenchError(f"train option {name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps",):
            if getattr(self, name) < 0:
                raise FlexBenchError(f"train option {name} must be >= 0")
        if self.group_size < 2:
            raise FlexBenchError("group_size must be >= 2: GRPO normalises rewards within a group")
        if (self.prompts_per_step * self.group_size) % self.mini_batches:
            raise FlexBenchError(f"mini_batches={self.mini_batches} must divide prompts_per_step * "
                                 f"group_size = {self.prompts_per_step * self.group_size}")
        for name in ("lr", "sft_lr"):
            if not getattr(self, name) > 0:
                raise FlexBenchError(f"{name} must be > 0")
        for name in ("kl_coef", "entropy_coef", "clip_eps", "value_coef", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise FlexBenchError(f"{name} must be >= 0")
        if not 0 < self.temperature <= 10:
            raise FlexBenchError("temperature must be in (0, 10] for sampling rollouts")
        if not 0 < self.top_p <= 1:
            raise FlexBenchError("top_p must be in (0, 1]")
        if not 0 <= self.lora_dropout < 1:
            raise FlexBenchError("lora_dropout must be in [0, 1)")
        if not 0 <= self.gae_lambda <= 1 or not 0 <= self.gae_gamma <= 1:
            raise FlexBenchError("gae_gamma and gae_lambda must be in [0, 1]")
        lo, hi = self.uncertainty_clip
        if not 0 < lo <= 1 <= hi:
            raise FlexBenchError(f"uncertainty_clip must satisfy 0 < lo <= 1 <= hi, got {self.uncertainty_clip}")
        if self.reward_cutoff is not None and self.reward_cutoff < 1:
            raise FlexBenchError("reward_cutoff must be >= 1 or null (the whole list)")
        if self.train_instances is not None and self.train_instances < 1:
            raise FlexBenchError("train_instances must be >= 1 or null (all)")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise FlexBenchError("cpu_threads must be >= 1 or null (torch's default)")
        if not 0 < self.vllm_gpu_memory <= 1:
            raise FlexBenchError(f"vllm_gpu_memory must be in (0, 1] (the vLLM engine's share of GPU memory), "
                                 f"got {self.vllm_gpu_memory}")
        if self.plan_prompt_tokens < 1:
            raise FlexBenchError("plan_prompt_tokens must be >= 1")
        if self.sharding is not Sharding.NONE and self.lora:
            raise FlexBenchError(f"sharding={self.sharding} is for full-parameter training; with lora=true "
                                 "use sharding=none (the adapters are small)")
        if self.sharding is not Sharding.NONE and self.optimizer is OptimizerKind.ADAMW8BIT:
            raise FlexBenchError(f"optimizer=adamw8bit does not work on sharded (FSDP) parameters; "
                                 f"use optimizer=adamw with sharding={self.sharding}")
        if self.sft_warmup_steps is not None and self.sft_warmup_steps < 0:
            raise FlexBenchError("sft_warmup_steps must be >= 0 or null (the method's default)")

    @property
    def prompt_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`flexbench.llm.prompts.build_prompt` for training, validation and the
        trained ranker (the same prompt everywhere)."""
        return {"mode": self.prompt_mode, "max_item_chars": self.prompt_item_chars}

    @property
    def rollouts_per_step(self) -> int:
        """Rollouts sampled per RL step: ``prompts_per_step * group_size``."""
        return self.prompts_per_step * self.group_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every field (for ``run.json`` and provenance)."""
        out = dataclasses.asdict(self)
        out["precision"], out["engine"] = self.precision.value, self.engine.value
        out["prompt_mode"] = self.prompt_mode.value
        out["sharding"], out["optimizer"] = self.sharding.value, self.optimizer.value
        out["uncertainty_clip"], out["lora_targets"] = list(self.uncertainty_clip), list(self.lora_targets)
        return out

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, method: str | None = None,
                     **overrides: Any) -> TrainConfig:
        """Build from CLI options: a named ``preset`` first, then the options, then ``overrides``.

        Values are converted by each field's type (:func:`flexbench.options.parse_options`:
        ``lr=1e-6`` is a float, ``steps=2.7`` an error); ``method`` selects the
        ``methods.<method>`` section of a preset or options mapping
        (:func:`flatten_for_method`). Keys that are not fields raise with close matches.
        """
        opts = flatten_for_method(options, method)
        opts.pop("method", None)
        preset = opts.pop("preset", None)
        values: dict[str, Any] = load_preset(str(preset), method) if preset else {}
        values.update(opts)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**parse_options(cls, values, what="train option"))


def flatten_for_method(options: Mapping[str, Any], method: str | None) -> dict[str, Any]:
    """The options of ``method``: every top-level key, then those of ``options["methods"][method]``.

    A preset (or ``--config`` file) sets only what it names, globally or for one
    method: ``{"steps": 300, "methods": {"rec-r1": {"sft_warmup_steps": 25}}}``
    leaves every other method's own warm-up alone.
    """
    out = {k: v for k, v in options.items() if k != "methods"}
    sections = options.get("methods") or {}
    if not isinstance(sections, Mapping) or not all(isinstance(v, Mapping) for v in sections.values()):
        raise FlexBenchError("train option 'methods' must map method names to option mappings")
    if method is not None:
        out.update(sections.get(method, {}))
    return out


def load_preset(name: str, method: str | None = None) -> dict[str, Any]:
    """Options of the preset ``flexbench/train/presets/<name>.json`` for ``method``."""
    known = sorted(p.stem for p in PRESET_DIR.glob("*.json"))
    if name not in known:
        raise FlexBenchError(f"unknown train preset {name!r}.{suggest(name, known)} Known: {', '.join(known)}.")
    path = PRESET_DIR / f"{name}.json"
    try:
        loaded = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FlexBenchError(f"preset {path} is not valid JSON: {err}") from None
    loaded.pop("preset", None)
    return flatten_for_method(loaded, method)


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)

