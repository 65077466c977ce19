"""The one policy-training loop: rollouts -> rewards -> per-token advantages -> PPO-clip update.

Every method runs through :class:`PolicyTrainer`; the method
(:class:`~flexbench.train.methods.MethodSpec`) only decides the credit
assignment (:mod:`flexbench.train.credit.assign`), the SFT warm-up and whether a
value head is trained. One step is::

    step < warm-up (or an SFT-only method):  SFT on the optimal lists of sft_batch_size prompts
    otherwise:  draw prompts_per_step prompts -> G rollouts each (policy in eval mode)
                -> per-token advantages (GRPO) or token rewards + GAE (PPO)
                -> reference log-probs (k3 KL) and, if several updates reuse the batch,
                   the sampling policy's log-probs
                -> ppo_epochs x mini_batches optimizer steps, each accumulating
                   gradients over micro-batches (token-mean over the mini-batch)
                -> push the policy's weights to the rollout engine (vLLM: also before the
                   first rollout after SFT warm-up or a resume; ``sync_seconds``)

With a vLLM engine each RL step logs ``logprob_gap``: the mean absolute difference
between the engine's sampling log-probs and the trainer's log-probs of the same
tokens in the step's first micro-batch, before its first optimizer step
(:func:`~flexbench.train.rollout.engines.logprob_gap`).

After step ``s`` (``s`` optimizer steps done): validation NDCG every
``eval_every`` steps (and at 0 and the end) appended to ``<out>/metrics.jsonl``
and plotted to ``<out>/curve.png``; a checkpoint every ``save_every`` steps,
on Ctrl-C, and at the end. Sampling is seeded per step from ``(seed, step)``
and the data order by position, so a resumed run reaches the same parameters
as an uninterrupted one (tested on CPU).

The loop runs under an :class:`accelerate.Accelerator` (created here when not
given): ``accelerate launch -m flexbench train ...`` gives DDP over GPUs, each
process drawing its own prompts; ``mixed_precision="bf16"`` on GPU. With
``sharding=fsdp|zero2`` the policy is sharded with FSDP2 instead
(:mod:`flexbench.train.distributed`): rollouts, scoring and validation run with
the weights gathered, checkpoints hold the full state on rank 0. The PPO value
head's gradients are averaged over processes before each optimizer step;
validation splits its instances across processes. Each RL step logs its wall
time per phase (``time_rollout``, ``time_logprob``, ``time_update``,
``time_sync``) and ``rollout_tokens_per_s`` / ``update_tokens_per_s``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flexbench.repair import stable_rng
from flexbench.train.checkpoint import Progress, load_checkpoint, save_policy, save_training_state
from flexbench.train.config import TrainConfig
from flexbench.train.credit.assign import observed_variance_share
from flexbench.train.credit.uncertainty import weight_spread
from flexbench.train.curves import (
    CURVE_FILE,
    METRICS_FILE,
    append_line,
    has_valid_line,
    plot_curve,
    progress_bar,
    truncate_metrics,
)
from flexbench.train.distributed import (
    average_gradients,
    clip_grad_norm,
    full_state_dict,
    gather_objects,
    gathered_weights,
    grad_sync,
    is_sharded,
    make_accelerator,
    make_optimizer,
    restore_sharded_training_state,
    shard_model,
)
from flexbench.train.methods import Advantage, Algorithm, MethodSpec
from flexbench.train.optim.forward import pack, score_completions
from flexbench.train.optim.loss import pad_groups, policy_loss
from flexbench.train.optim.ppo import ValueHead, gae, value_loss, weighted_whiten
from flexbench.train.optim.sft import sft_step, task_examples
from flexbench.train.optim.shared import any_prompt_shared, pack_shared, supports_shared_prefix
from flexbench.train.rollout.engines import EngineSync, NoSync, logprob_gap
from flexbench.train.rollout.sampler import Rollout, RolloutSampler
from flexbench.train.tasks import TaskSampler

Validator = Callable[[torch.nn.Module, int], list[dict[str, Any]]]


@dataclass
class _Prepared:
    """Tensors of a set of rollouts that stay fixed during the update."""

    rollouts: list[Rollout]
    advantages: list[torch.Tensor]
    ref_logprobs: list[torch.Tensor | None]
    old_logprobs: list[torch.Tensor | None]
    old_values: list[torch.Tensor | None]
    returns: list[torch.Tensor | None]


class PolicyTrainer:
    """Train ``model`` with ``method`` on the prompts of ``tasks``; write everything under ``out_dir``."""

    def __init__(self, cfg: TrainConfig, method: MethodSpec, model: torch.nn.Module, tokenizer: Any,
                 tasks: TaskSampler, out_dir: Path, *, backend: Any, sync: EngineSync | None = None,
                 reference: torch.nn.Module | None = None, validator: Validator | None = None,
                 accelerator: Any = None, progress: bool = True) -> None:
        self.cfg, self.method, self.tokenizer, self.tasks = cfg, method, tokenizer, tasks
        self.out_dir = Path(out_dir)
        self.validator, self.show_progress = validator, progress
        self.sync = sync or NoSync()
        self._engine_stale = True  # the engine starts from the checkpoint on disk: push before the first rollout
        self._gap_pending, self._gap = False, None
        self.acc = accelerator or make_accelerator(cfg)
        model = shard_model(model, cfg, self.acc)  # FSDP2 in place (sharding=fsdp|zero2), before the optimizer
        self.sharded = is_sharded(model)
        self.value_head = ValueHead(model.config.hidden_size) if method.uses_value_head else None
        params = [p for p in model.parameters() if p.requires_grad]
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        base_lr = cfg.sft_lr if method.algorithm is Algorithm.SFT else cfg.lr
        optimizer = make_optimizer(params, cfg, base_lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: self.lr_factor(s, base_lr))
        # the scheduler stays unwrapped: one schedule step per training step on every process
        if self.sharded:  # FSDP2 already distributes the model: accelerate must not wrap it in DDP
            self.model, self.optimizer = model, self.acc.prepare(optimizer)
        else:
            self.model, self.optimizer = self.acc.prepare(model, optimizer)
        self.scheduler = scheduler
        if self.value_head is not None:
            self.value_head = self.value_head.to(self.acc.device)
        self.reference = reference
        self.sampler = RolloutSampler(backend, tokenizer, method, cfg)
        self._share_prefix = cfg.shared_prefix and supports_shared_prefix(self.acc.unwrap_model(self.model))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.progress = Progress()
        self._updated_in_step = False
        if isinstance(reference, torch.nn.Module):
            reference.to(self.acc.device)

    # ----------------------------------------------------------------- schedule
    @property
    def warmup_steps(self) -> int:
        """SFT warm-up steps before RL (the config overrides the method's default)."""
        if self.method.algorithm is Algorithm.SFT:
            return self.cfg.steps
        return self.method.sft_warmup_steps if self.cfg.sft_warmup_steps is None else self.cfg.sft_warmup_steps

    @property
    def total_steps(self) -> int:
        """All optimizer steps: SFT-only methods ``steps``; RL methods warm-up + ``steps``."""
        return self.cfg.steps if self.method.algorithm is Algorithm.SFT else self.warmup_steps + self.cfg.steps

    def lr_factor(self, step: int, base_lr: float) -> float:
        """Multiplier of the base lr at ``step``: SFT lr during warm-up, linear warm-up of ``warmup_steps``."""
        phase_lr = self.cfg.sft_lr if step < self.warmup_steps else self.cfg.lr
        ramp = min(1.0, (step + 1) / self.cfg.warmup_steps) if self.cfg.warmup_steps else 1.0
        return phase_lr / base_lr * ramp

    # --------------------------------------------------------------------- run
    def train(self, resume: bool = True) -> Path:
        """Run (or resume) training to ``total_steps`` and save the policy; return ``out_dir``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not resume and self.acc.is_main_process:
            (self.out_dir / METRICS_FILE).unlink(missing_ok=True)
        if resume:
            restore = (lambda state: restore_sharded_training_state(self.model, self.value_head, self.optimizer,
                                                                    state)) if self.sharded else None
            restored = load_checkpoint(self.out_dir, model=self.acc.unwrap_model(self.model),
                                       optimizer=self.optimizer, scheduler=self.scheduler,
                                       value_head=self.value_head, restore=restore)
            self.progress = restored or self.progress
        if self.acc.is_main_process:  # one writer; the others read the file only after the barrier
            truncate_metrics(self.out_dir / METRICS_FILE, self.progress.step)
        self.acc.wait_for_everyone()
        if self.progress.step == 0 and not has_valid_line(self.out_dir / METRICS_FILE, 0):
            self._validate(0, [])
        rewards: list[float] = []
        try:
            show = self.show_progress and self.acc.is_main_process
            with progress_bar(self.total_steps, self.progress.step, show) as advance:
                while self.progress.step < self.total_steps:
                    info = self.step()
                    rewards += info.pop("rewards", [])
                    s = self.progress.step
                    self._log({"step": s, "split": "train", **info})
                    if s % self.cfg.eval_every == 0 or s == self.total_steps:
                        self._validate(s, rewards)
                        rewards = []
                    if s % self.cfg.save_every == 0 or s == self.total_steps:
                        self.save()
                    advance(info)
        except KeyboardInterrupt:
            self._save_on_interrupt()
            raise
        weights = full_state_dict(self.model) if self.sharded else None  # a collective: every rank
        if self.acc.is_main_process:
            save_policy(self.out_dir, self.acc.unwrap_model(self.model), self.tokenizer, state_dict=weights)
        return self.out_dir

    def _save_on_interrupt(self) -> None:
        """Checkpoint after Ctrl-C unless an optimizer step of an unfinished step already ran.

        Interrupted between steps, or before the step's first optimizer update
        (during rollouts), the parameters are those of the last finished step:
        save them. After a partial update (several mini-batches) they are not,
        so the previous checkpoint is kept.
        """
        if self._updated_in_step:
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.save()

    def save(self) -> None:
        """Write the resumable checkpoint (a collective: a sharded run writes each rank's shards)."""
        save_training_state(self.out_dir, self.progress, model=self.model, optimizer=self.optimizer,
                            scheduler=self.scheduler, accelerator=self.acc, value_head=self.value_head)

    def step(self) -> dict[str, Any]:
        """One optimizer step of the current phase; advances :attr:`progress`."""
        step = self.progress.step
        started = time.perf_counter()
        self._updated_in_step = False
        torch.manual_seed(int(stable_rng("train-step", self.cfg.seed, step, self.acc.process_index)
                              .integers(2**62)))
        if step < self.warmup_steps:
            info = self._sft_step()
        else:
            info = self._rl_step()
        self.scheduler.step()
        self._updated_in_step = False
        return {**info, "seconds": time.perf_counter() - started}

    # ------------------------------------------------------------------- phases
    def _draw(self, count: int) -> tuple[list[Any], int]:
        """This process's ``count`` tasks and the data position after the step (all processes)."""
        start = self.progress.position + self.acc.process_index * count
        return self.tasks.tasks(start, count), self.progress.position + count * self.acc.num_processes

    def _sft_step(self) -> dict[str, Any]:
        tasks, position = self._draw(self.cfg.sft_batch_size)
        examples = task_examples(tasks, self.tokenizer, seed=self.cfg.seed,
                                  prompt_options=self.cfg.prompt_options)
        self.model.train()
        loss = sft_step(self.model, examples, pad_id=self.pad_id, micro_batch_size=self.cfg.micro_batch_size,
                        backward=self.acc.backward)
        self._optimizer_step()
        self.progress = Progress(self.progress.step + 1, position)
        return {"phase": "sft", "loss": loss}

    def _rl_step(self) -> dict[str, Any]:
        tasks, position = self._draw(self.cfg.prompts_per_step)
        policy = self.acc.unwrap_model(self.model)
        policy.eval()
        pushed = self._push_weights(policy)  # only after SFT warm-up, a resume, or at the start
        clock = _Clock()
        with torch.no_grad():  # FSDP: full weights while the policy generates (not for vLLM) and scores
            with gathered_weights(self.model, enabled=getattr(self.sync, "needs_policy_weights", True)):
                rollouts = self.sampler.sample(tasks, self.progress.step)
            self.sync.release()  # vLLM sleep mode: the engine frees its memory until the next push
            clock.lap("rollout")
            with gathered_weights(self.model):
                prepared = self._prepare(rollouts)
            clock.lap("logprob")
        self.model.train()
        stats = self._update(prepared)
        clock.lap("update")
        synced = _added(pushed, self._push_weights(policy))  # the engine follows every update
        clock.lap("sync")
        self.progress = Progress(self.progress.step + 1, position)
        seq = [r.seq_reward for r in rollouts]
        tokens = int(sum(len(r.completion_ids) for r in rollouts))
        return {"phase": "rl", "reward_mean": float(np.mean(seq)), "ndcg_mean": float(np.mean([r.ndcg for r in rollouts])),
                "parse_rate": float(np.mean([r.parsed for r in rollouts])),
                **weight_spread(np.array([r.weight for r in rollouts]), np.array([r.group for r in rollouts])),
                **_observed_share(rollouts),
                "tokens": tokens, "rewards": seq, **stats, **clock.times(), **synced,
                **({"logprob_gap": self._gap} if self._gap is not None else {}),
                "rollout_tokens_per_s": tokens / max(clock.seconds["rollout"], 1e-9),
                "update_tokens_per_s": sum(len(r.prompt_ids) + len(r.completion_ids) for r in rollouts)
                * self.cfg.ppo_epochs / max(clock.seconds["update"], 1e-9)}

    # ------------------------------------------------------------------- update
    def _batches(self, items: Sequence[int]) -> list[list[int]]:
        size = self.cfg.micro_batch_size
        return [list(items[i:i + size]) for i in range(0, len(items), size)]

    def _pack(self, rollouts: Sequence[Rollout]) -> Any:
        """Pack rollouts with their supports (constrained: scored under their sampling distribution).

        With ``shared_prefix`` the rollouts of one prompt share one copy of it
        (:mod:`flexbench.train.optim.shared`; same log-probs, fewer tokens).
        """
        supports = [r.support for r in rollouts] if any(r.support is not None for r in rollouts) else None
        args = ([r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts], self.pad_id, supports)
        if self._share_prefix and any_prompt_shared(args[0]):
            return pack_shared(*args).to(self.acc.device)
        return pack(*args).to(self.acc.device)

    def _prepare(self, rollouts: list[Rollout]) -> _Prepared:
        n = len(rollouts)
        reuse = self.cfg.ppo_epochs * self.cfg.mini_batches > 1
        prep = _Prepared(rollouts, [torch.as_tensor(r.advantages, dtype=torch.float32) for r in rollouts],
                         [None] * n, [None] * n, [None] * n, [None] * n)
        policy = self.acc.unwrap_model(self.model)
        for idx in self._batches(range(n)):
            batch = self._pack([rollouts[i] for i in idx])
            if self.cfg.kl_coef > 0 and self.reference is not None:
                ref = score_completions(self.reference, batch, temperature=self.cfg.temperature).logprobs.float()
                for j, i in enumerate(idx):
                    prep.ref_logprobs[i] = ref[j, :len(rollouts[i].completion_ids)].cpu()
            if reuse or self.value_head is not None:
                with self.acc.autocast():
                    scores = score_completions(policy, batch, hidden=self.value_head is not None,
                                               temperature=self.cfg.temperature)
                for j, i in enumerate(idx):
                    t = len(rollouts[i].completion_ids)
                    prep.old_logprobs[i] = scores.logprobs[j, :t].float().cpu() if reuse else None
                    if self.value_head is not None:
                        prep.old_values[i] = self.value_head(scores.hidden[j:j + 1, :t])[0].float().cpu()
        if self.value_head is not None:
            self._gae(prep)
        return prep

    def _gae(self, prep: _Prepared) -> None:
        width = max(len(r.completion_ids) for r in prep.rollouts)
        mask, rew, val = (torch.zeros(len(prep.rollouts), width) for _ in range(3))
        for i, r in enumerate(prep.rollouts):
            t = len(r.completion_ids)
            mask[i, :t], rew[i, :t], val[i, :t] = 1.0, torch.as_tensor(r.rewards), prep.old_values[i]
        adv, ret = gae(rew, val, mask, self.cfg.gae_gamma, self.cfg.gae_lambda)
        adv = weighted_whiten(adv, mask, torch.as_tensor([r.weight for r in prep.rollouts]))  # zero-sum (SPEC 6)
        for i, r in enumerate(prep.rollouts):
            t = len(r.completion_ids)
            prep.advantages[i] = adv[i, :t]
            prep.returns[i] = ret[i, :t]

    def _update(self, prep: _Prepared) -> dict[str, float]:
        n = len(prep.rollouts)
        self._gap_pending, self._gap = True, None
        stats: dict[str, list[float]] = {"loss": [], "kl": [], "entropy": [], "clip_fraction": [], "grad_norm": []}
        for epoch in range(self.cfg.ppo_epochs):
            order = stable_rng("ppo-order", self.cfg.seed, self.progress.step, epoch).permutation(n)
            for mb in np.array_split(order, self.cfg.mini_batches):
                denom = float(sum(len(prep.rollouts[i].completion_ids) for i in mb))
                micro = self._batches([int(i) for i in mb])
                for k, idx in enumerate(micro):
                    with grad_sync(self.model, self.acc, enabled=k == len(micro) - 1):
                        out = self._micro_loss(prep, idx, denom)
                        self.acc.backward(out.loss)
                    for key in ("kl", "entropy", "clip_fraction"):
                        stats[key].append(getattr(out, key))
                    stats["loss"].append(float(out.loss.detach()))
                stats["grad_norm"].append(self._optimizer_step())
        return {k: float(np.mean(v)) if k != "loss" else float(np.sum(v) / max(1, self.cfg.ppo_epochs *
                                                                                self.cfg.mini_batches))
                for k, v in stats.items() if v}

    def _micro_loss(self, prep: _Prepared, idx: Sequence[int], denom: float) -> Any:
        rollouts = [prep.rollouts[i] for i in idx]
        batch = self._pack(rollouts)
        width = batch.completion.shape[1]
        need_value = self.value_head is not None
        scores = score_completions(self.model, batch, entropy=self.cfg.entropy_coef > 0, hidden=need_value,
                                   temperature=self.cfg.temperature)
        logp = scores.logprobs
        if self._gap_pending:  # the step's first micro-batch, before its first optimizer step
            self._gap_pending, self._gap = False, logprob_gap(logp, rollouts)
        old = _stack([prep.old_logprobs[i] for i in idx], width, logp.detach())
        use_ref = self.reference is not None and self.cfg.kl_coef > 0  # _prepare scores the reference only then
        ref = _stack([prep.ref_logprobs[i] for i in idx], width, None) if use_ref else None
        adv = _stack([prep.advantages[i] for i in idx], width, torch.zeros_like(logp)).to(logp.device)
        groups = (pad_groups([prep.rollouts[i].segments for i in idx], width)  # Rank-GRPO's rank-level ratio
                  if self.method.advantage is Advantage.RANK_GRPO else None)
        out = policy_loss(logp, old.to(logp.device), adv, batch.completion_mask, clip_eps=self.cfg.clip_eps,
                          ref_logprobs=None if ref is None else ref.to(logp.device),
                          kl_coef=self.cfg.kl_coef if ref is not None else 0.0,
                          entropy=scores.entropy, entropy_coef=self.cfg.entropy_coef, denom=denom,
                          ratio_groups=groups)
        if need_value:
            values = self.value_head(scores.hidden)
            old_v = _stack([prep.old_values[i] for i in idx], width, None).to(values.device)
            ret = _stack([prep.returns[i] for i in idx], width, None).to(values.device)
            vloss = value_loss(values, old_v, ret, batch.completion_mask, self.cfg.value_clip, denom)
            out = type(out)(out.loss + self.cfg.value_coef * vloss, out.policy, out.kl, out.entropy,
                            out.clip_fraction)
        return out

    def _optimizer_step(self) -> float:
        if self.value_head is not None:  # outside DDP/FSDP: average its gradients over the processes here
            average_gradients(self.value_head.parameters(), self.acc.num_processes)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        norm = clip_grad_norm(params, self.cfg.max_grad_norm, self.acc) if self.cfg.max_grad_norm > 0 else math.nan
        self.optimizer.step()
        self._updated_in_step = True
        self._engine_stale = True
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def _push_weights(self, policy: Any) -> dict[str, float]:
        """Push the policy's weights to the rollout engine if an optimizer step changed them since the last push."""
        if not self._engine_stale:
            return {}
        self._engine_stale = False
        return dict(self.sync(policy))

    # --------------------------------------------------------------- validation
    def _validate(self, step: int, rewards: Sequence[float]) -> None:
        """Validation on every process: each ranks its share and the main process logs all.

        A validator with ``records``/``lines`` (:class:`~flexbench.train.validation.PolicyValidator`)
        splits the instances across processes; a plain callable runs on every
        process (needed under FSDP, where every rank must gather the weights).
        """
        if self.validator is None:
            return
        policy = self.acc.unwrap_model(self.model)
        policy.eval()
        world, split = self.acc.num_processes, hasattr(self.validator, "records")
        engine = getattr(self.validator, "engine", None)  # validation through vLLM needs no gathered weights
        with torch.no_grad(), gathered_weights(self.model, enabled=engine is None):
            if world > 1 and split:
                shares = gather_objects(self.validator.records(policy, (self.acc.process_index, world)), self.acc)
                lines = self.validator.lines(*shares) if self.acc.is_main_process else []
            else:
                lines = self.validator(policy, step) if world > 1 or self.acc.is_main_process else []
        if not self.acc.is_main_process:
            return
        train_reward = float(np.mean(rewards)) if rewards else None
        for line in lines:
            self._log({"step": step, "split": "valid", **line, "train_reward_mean": train_reward})
        plot_curve(self.out_dir / METRICS_FILE, self.out_dir / CURVE_FILE)

    def _log(self, line: dict[str, Any]) -> None:
        if self.acc.is_main_process:
            append_line(self.out_dir / METRICS_FILE, line)


def _observed_share(rollouts: Sequence[Rollout]) -> dict[str, float]:
    """``reward_var_observed``: the share of the groups' reward variance that observed labels explain."""
    if any(r.ndcg_observed is None for r in rollouts):
        return {}
    share = observed_variance_share(np.array([r.ndcg for r in rollouts]),
                                    np.array([r.ndcg_observed for r in rollouts]),
                                    np.array([r.group for r in rollouts]))
    return {} if share is None else {"reward_var_observed": share}


def _added(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Key-wise sum of two push reports (the step's pushes before the rollouts and after the update)."""
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in {**a, **b}}


def _stack(rows: Sequence[torch.Tensor | None], width: int, fallback: torch.Tensor | None) -> torch.Tensor:
    if any(r is None for r in rows):
        if fallback is None:
            raise ValueError("missing per-token tensors for the update")
        return fallback
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r  # type: ignore[arg-type]
    return out


class _Clock:
    """Wall time per phase of a step (CUDA synchronised so asynchronous kernels count where they run)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = self._now()

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, phase: str) -> None:
        now = self._now()
        self.seconds[phase] = now - self._last
        self._last = now

    def times(self) -> dict[str, float]:
        """``{"time_<phase>": seconds}`` for ``metrics.jsonl``."""
        return {f"time_{k}": v for k, v in self.seconds.items()}

