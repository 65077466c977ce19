"""``flexbench train <policy method>``: assemble config, data, gains, model and loop, then train.

:func:`train_policy` is the trainer-table target of ``flexrec``, ``rec-r1``,
``rank-grpo``, ``tallrec`` and the ablations. It

1. builds :class:`~flexbench.train.config.TrainConfig` from the preset, the
   method's own overrides (TALLRec: LoRA, lr 1e-4), then ``--config``/``--set``,
   then ``--model``/``--seed``;
2. opens the dataset (``flexrec-dense`` trains on ``<dataset>-dense``) and one
   gain provider per training need (:func:`flexbench.train.signal.gains.make_gain_provider`)
   with the signal of :func:`gain_signal_for`: the method's, except that on ML-1M
   (``unrated_gains=auto``) unrated candidates get gain 0 as in its labels;
3. makes sure the critic exists when the method's gains need it for an
   engagement need: the one checkpoint under ``<data>/checkpoints/critic/<dataset>/``
   is used; when there is none it is trained first with the critic's defaults
   (``auto_critic``, default on; with ``--set auto_critic=false`` a clear error
   names ``flexbench train critic --dataset D`` instead);
4. checks the memory plan (:mod:`flexbench.train.preflight`; done first, before the
   data opens) against the visible device and stops with suggestions when it cannot
   fit (``memory_check=false`` skips it);
5. loads the policy (float32 master weights; bf16 autocast on GPU), LoRA when
   configured, the frozen reference for the KL term, the rollout backend, the
   validator, and runs :class:`~flexbench.train.loop.PolicyTrainer` (DDP, or FSDP2 with ``sharding``).

Single-need training passes one need; joint training (``--needs all``) passes
every need of the dataset and draws a need per prompt. Testing a policy
trained on one need on the others is evaluation only (``flexbench eval METHOD
--need N --set train_need=interest``). ``run.json`` in the output directory
records ``{"method", "dataset", "needs", "label", "model", "joint", "gain_signal", "config", "versions"}``
(``versions``: Python, torch, CUDA, NCCL, transformers, accelerate, peft, vLLM, checked at start-up by
:func:`flexbench.train.versions.check_runtime`, which refuses too-old releases).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.train.config import TrainConfig, UnratedGains, flatten_for_method, load_preset
from flexbench.train.methods import (
    CRITIC_SIGNALS,
    IMPUTING_SIGNALS,
    Algorithm,
    GainSignal,
    MethodSpec,
    get_method,
)
from flexbench.trainers import TrainRequest

RUN_FILE = "run.json"


def build_config(method: MethodSpec, request: TrainRequest) -> TrainConfig:
    """Resolved config of ``request``: defaults < named preset < the method's own settings < options
    (``--config``/``--set``) < ``--model``/``--seed``; ``sft_warmup_steps`` left at ``None`` becomes the
    method's own (Rec-R1: 25, the others 0), so the resolved config states what will run."""
    options = flatten_for_method({k: v for k, v in request.options.items() if k != "method"}, method.name)
    preset = options.pop("preset", None)
    base = load_preset(str(preset), method.name) if preset else {}
    cfg = TrainConfig.from_options({**base, **method.config, **options}, model=request.model,
                                   seed=request.seed)
    if cfg.sft_warmup_steps is None:
        cfg = dataclasses.replace(cfg, sft_warmup_steps=method.sft_warmup_steps)
    return cfg


def train_policy(request: TrainRequest) -> Path:
    """Train the policy of ``request`` and return its output directory (see the module docstring)."""
    import torch

    from flexbench.catalog import open_dataset
    from flexbench.train.distributed import make_accelerator
    from flexbench.train.loop import PolicyTrainer
    from flexbench.train.preflight import check_before_training
    from flexbench.train.rollout.engines import make_backend
    from flexbench.train.tasks import TaskSampler
    from flexbench.vocabulary import DATASET_NEEDS, get_need

    method = get_method(str(request.options.get("method", request.method)))
    cfg = build_config(method, request)
    acc = make_accelerator(cfg)
    runtime = _check_versions(acc)
    check_before_training(cfg, method, acc)  # the memory plan, before anything loads
    dataset = open_dataset(_train_dataset_name(request.dataset, method))
    needs = [get_need(n) for n in request.needs]
    signal = gain_signal_for(method, dataset.dataset, cfg.unrated_gains)
    with acc.main_process_first():  # under `accelerate launch` only one process trains a missing critic
        gains = _gain_providers(dataset, [n.name for n in needs], method, signal, cfg, request)
    tasks = TaskSampler(dataset.instances("train", limit=cfg.train_instances), needs, gains, seed=cfg.seed)
    if cfg.cpu_threads is not None and not torch.cuda.is_available():
        torch.set_num_threads(cfg.cpu_threads)
    torch.manual_seed(cfg.seed)
    model, tokenizer = _load_policy(cfg, str(acc.device))
    out = Path(request.out_dir)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        joint = len(needs) > 1 and set(request.needs) == set(DATASET_NEEDS.get(dataset.dataset, ()))
        _write_run(out, method, request, cfg, joint, signal, versions=runtime["versions"])
    backend, sync = make_backend(cfg, model, tokenizer)
    validator = _validator(dataset, needs, tokenizer, cfg)
    if validator is not None and not sync.needs_policy_weights:  # validate through the vLLM engine in memory
        validator.use_engine(backend)
    trainer = PolicyTrainer(cfg, method, model, tokenizer, tasks, out, backend=backend, sync=sync,
                            reference=_reference(cfg, method, model, str(acc.device)),
                            validator=validator, accelerator=acc)
    return trainer.train(resume=request.resume)


def _train_dataset_name(name: str, method: MethodSpec) -> str:
    if not method.dense_data or name.endswith("-dense"):
        return name
    from flexbench.catalog import known_names

    dense = f"{name}-dense"
    if dense not in known_names():
        raise FlexBenchError(f"{method.name} trains on a dense variant, and {name!r} has none "
                             f"(known: {', '.join(n for n in known_names() if n.endswith('-dense'))})")
    return dense


def gain_signal_for(method: MethodSpec, dataset: str, unrated: UnratedGains) -> GainSignal:
    """The gain signal training uses: the method's, or ``observed`` where unrated candidates get gain 0.

    ``unrated=zero``, or ``auto`` on a dataset of :data:`~flexbench.vocabulary.UNRATED_IS_ZERO`
    (ML-1M), turns an imputing signal (critic, KNN) into ``observed``: observed
    values, 0 elsewhere, the rule of that dataset's labels. ``dense`` and
    ``labels`` are never changed.
    """
    from flexbench.vocabulary import UNRATED_IS_ZERO

    if method.gain_signal not in IMPUTING_SIGNALS:
        return method.gain_signal
    zero = unrated is UnratedGains.ZERO or (unrated is UnratedGains.AUTO and dataset in UNRATED_IS_ZERO)
    return GainSignal.OBSERVED if zero else method.gain_signal


def _gain_providers(dataset: Any, needs: list[str], method: MethodSpec, signal: GainSignal, cfg: TrainConfig,
                    request: TrainRequest) -> dict[str, Any]:
    """One gain provider per need under ``signal`` (:func:`gain_signal_for`); the critic only where it is used."""
    from flexbench.train.rollout.engines import announce
    from flexbench.train.signal.gains import ENGAGEMENT_NEEDS, make_gain_provider

    engagement = bool(ENGAGEMENT_NEEDS & set(needs))
    if signal != method.gain_signal and engagement:
        announce(f"training gains on {dataset.name}: observed ratings, 0 for unrated candidates, as its labels "
                 f"(unrated_gains={cfg.unrated_gains.value}; `--set unrated_gains=impute` imputes them with "
                 f"{method.gain_signal.value})")
    critic = ensure_critic(dataset.name, cfg, request) if signal in CRITIC_SIGNALS and engagement else None
    return {n: make_gain_provider(dataset, n, signal.value, critic) for n in needs}


def ensure_critic(dataset: str, cfg: TrainConfig, request: TrainRequest) -> Path:
    """The critic checkpoint of ``dataset``; trained first (critic defaults) when missing and ``cfg.auto_critic``."""
    from flexbench.catalog import open_dataset
    from flexbench.paths import critic_dir
    from flexbench.train.signal.critic import CriticConfig
    from flexbench.train.signal.critic_fit import fit_critic
    from flexbench.train.signal.gains import default_critic_path, find_critics

    if find_critics(dataset):
        return default_critic_path(dataset)
    root = critic_dir(dataset)
    if not cfg.auto_critic:
        raise FlexBenchError(f"{request.method} needs the critic of {dataset!r} and there is none under "
                             f"{root}/; run `flexbench train critic --dataset {dataset}` first")
    return fit_critic(open_dataset(dataset), CriticConfig(seed=request.seed), root).out


def _load_policy(cfg: TrainConfig, device: str = "auto") -> tuple[Any, Any]:
    from flexbench.llm.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(cfg.model, device=device, dtype="float32", trainable=True)
    return apply_lora_and_checkpointing(model, cfg), tokenizer


def apply_lora_and_checkpointing(model: Any, cfg: TrainConfig) -> Any:
    """Wrap ``model`` with LoRA adapters (``cfg.lora``) and turn on gradient checkpointing if asked."""
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if not cfg.lora:
        return model
    from peft import LoraConfig, get_peft_model

    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


class AdapterDisabled:
    """The frozen reference of a LoRA policy: the same model with its adapters switched off."""

    def __init__(self, peft_model: Any) -> None:
        self.peft_model = peft_model

    def __call__(self, **kwargs: Any) -> Any:
        with self.peft_model.disable_adapter():
            return self.peft_model(**kwargs)


def _reference(cfg: TrainConfig, method: MethodSpec, model: Any, device: str = "auto") -> Any:
    if method.algorithm is Algorithm.SFT or cfg.kl_coef == 0:
        return None
    if cfg.lora:
        return AdapterDisabled(model)
    from flexbench.llm.models import load_model_and_tokenizer

    reference, _ = load_model_and_tokenizer(cfg.model, device=device, trainable=False)
    return reference


def _validator(dataset: Any, needs: list[Any], tokenizer: Any, cfg: TrainConfig) -> Any:
    from flexbench.train.policy_ranker import token_cap
    from flexbench.train.validation import PolicyValidator

    sets = {}
    for need in needs:
        instances = dataset.instances("valid", limit=cfg.eval_instances)
        if not instances:
            return None
        sets[need.name] = (need, instances, dataset.labels(need.name, "valid"))
    return PolicyValidator(tokenizer, sets, max_new_tokens=token_cap(cfg.to_dict()),
                           constrained=cfg.constrained, seed=cfg.seed, prompt_options=cfg.prompt_options)


def _check_versions(acc: Any) -> dict[str, Any]:
    """Refuse too-old libraries (:mod:`flexbench.train.versions`); print the versions in use once."""
    from flexbench.train.rollout.engines import announce
    from flexbench.train.versions import check_runtime, version_line

    runtime = check_runtime(vllm=False)  # the vLLM engine reports its own version and weight route
    if acc.is_main_process:
        announce(f"versions: {version_line(runtime)}")
    return runtime


def _write_run(out: Path, method: MethodSpec, request: TrainRequest, cfg: TrainConfig, joint: bool,
               signal: GainSignal, versions: dict[str, Any] | None = None) -> None:
    run = {"method": method.name, "label": method.label, "dataset": request.dataset,
           "gain_signal": signal.value, **({"versions": versions} if versions is not None else {}),
           "needs": list(request.needs), "joint": joint, "train_need": "all" if joint else "+".join(request.needs),
           "model": cfg.model, "config": cfg.to_dict()}
    (out / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True))
