"""One training run of the credit-assignment testbed, and the probe that measures its credit.

:func:`run_job` trains one (method, seed) with the real
:class:`~flexbench.train.loop.PolicyTrainer` on the task of
``benchmarks/credit_task.py`` and returns its validation curve, per-instance
test NDCG@5, training statistics and the probe's figures. It runs in a worker
process; what it needs (dataset, tokenizer, gain providers) is loaded once per
process (:class:`_Shared`).

:class:`CreditProbe` wraps the trainer's rollout sampler (composition: the loop
calls ``sampler.sample`` and gets the same rollouts back) and records, per RL step,

* the advantages of *item tokens* (tokens inside an answer entry ``[3]``) and of
  *other tokens* (separators, EOS): mean, mean absolute value;
* for every valid entry at rank ``k`` its advantage ``A`` beside the entry's true
  per-decision quality ``q_k = g*(item_k) - mean(g* of the items still unranked
  at step k)`` (``g*``: the noise-free gains; ``q > 0`` means the choice beat a
  uniform pick from the remaining pool), hence the sign agreement
  ``P(sign A = sign q)`` and ``corr(A, q)``;
* the spread of the uncertainty weights within each group, and the group's *net
  advantage* ``sum_i sum_t A_{i,t} / sum_i T_i`` (0 for group-normalised advantages
  on equal-length rollouts; the uncertainty weights make it non-zero, which pushes
  every sampled token of the group up or down together);
* at a few steps, the norm of the policy-gradient of each token class alone,
  ``|| d/dtheta sum_t m_t A_t log pi(a_t) / N ||`` with ``m`` the class mask and
  ``N`` the step's token count (the loop's token-mean), taken with
  ``torch.autograd.grad`` so the trainer's gradients are untouched; ``log pi``
  is the trainer's, under the constrained sampling distribution, so forced
  tokens (brackets, EOS, the last label) contribute exactly 0.

PPO methods get their advantages from GAE inside the loop, after sampling, so
the probe reports no advantage figures for them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Job:
    """One run: a testbed row (label, method, warm-up, gain signal), a seed and the shared setting."""

    label: str
    method: str
    signal: str
    warmup: int
    seed: int
    setting: dict[str, Any]
    data_dir: str
    tokenizer_dir: str
    critic_dir: str
    out_dir: str
    start_state: str | None = None  # a policy state dict to start from (the shared SFT start)
    reward_cutoff: int | None = 10
    save_state: bool = False  # write <out_dir>/policy-state.pt at the end (the job that makes the SFT start)

    @property
    def sft_only(self) -> bool:
        """The job that trains the shared SFT start (``sft_steps`` supervised steps, no RL)."""
        return self.method == "sft"


@dataclass
class _Shared:
    """What every run of a worker process reads (loaded once per process)."""

    dataset: Any
    tokenizer: Any
    splits: dict[str, list[Any]]
    labels: dict[str, dict[str, Any]]
    providers: dict[str, Any] = field(default_factory=dict)


_SHARED: dict[str, _Shared] = {}


def _shared(job: Job) -> _Shared:
    if job.data_dir not in _SHARED:
        from transformers import PreTrainedTokenizerFast

        from flexbench.prepared import PreparedDataset

        ds = PreparedDataset(Path(job.data_dir))
        tok = PreTrainedTokenizerFast.from_pretrained(job.tokenizer_dir)
        tok.padding_side = "left"
        splits = {s: ds.instances(s) for s in ("train", "valid", "test")}
        labels = {s: ds.labels("interest", s) for s in ("train", "valid", "test")}
        _SHARED[job.data_dir] = _Shared(ds, tok, splits, labels)
    return _SHARED[job.data_dir]


def _provider(shared: _Shared, signal: str, critic_dir: str) -> Any:
    from flexbench.train.signal.gains import make_gain_provider

    if signal not in shared.providers:
        critic = Path(critic_dir) if signal in ("observed+critic", "raw-critic") else None
        shared.providers[signal] = make_gain_provider(shared.dataset, "interest", signal, critic)
    return shared.providers[signal]


class CreditProbe:
    """Wraps a rollout sampler and records the credit it hands out (module docstring)."""

    def __init__(self, inner: Any, tokenizer: Any, model: Any, true_gains: dict[str, np.ndarray],
                 grad_steps: Sequence[int]) -> None:
        self.inner, self.tokenizer, self.model = inner, tokenizer, model
        self.true_gains, self.grad_steps = true_gains, set(grad_steps)
        self.adv = {"item": [], "other": []}
        self.pairs: list[tuple[float, float]] = []
        self.weight_spread: list[float] = []
        self.net_adv: list[float] = []
        self.grad_norms: list[dict[str, float]] = []

    def sample(self, tasks: Sequence[Any], step: int) -> list[Any]:
        """The inner sampler's rollouts, unchanged; records the figures of this step."""
        rollouts = self.inner.sample(tasks, step)
        masks = [self._record(tasks[r.group], r) for r in rollouts]
        for g in range(len(tasks)):
            group = [r for r in rollouts if r.group == g]
            self.weight_spread.append(float(np.std([r.weight for r in group])))
            tokens = np.concatenate([np.asarray(r.advantages, dtype=np.float64) for r in group])
            if tokens.any():
                self.net_adv.append(float(tokens.mean()))
        if step in self.grad_steps:
            self.grad_norms.append({"step": step, **self._grad_norms(rollouts, masks)})
        return rollouts

    def _record(self, task: Any, rollout: Any) -> np.ndarray:
        from flexbench.llm.parsing import decode_with_offsets, parse_ranking
        from flexbench.train.credit.tokens import token_item_index

        ids = task.instance.candidate_ids
        text, offsets = decode_with_offsets(self.tokenizer, rollout.completion_ids)
        parsed = parse_ranking(text, ids)
        index = token_item_index(offsets, [e.span for e in parsed.entries])
        adv = np.asarray(rollout.advantages, dtype=np.float64)
        if adv.any():
            self.adv["item"] += adv[index >= 0].tolist()
            self.adv["other"] += adv[index < 0].tolist()
            gain = dict(zip(ids, self.true_gains[task.instance.instance_id], strict=True))
            remaining = set(ids)
            for m, entry in enumerate(parsed.entries):
                if entry.status != "valid" or entry.item_id not in remaining:
                    continue
                q = gain[entry.item_id] - float(np.mean([gain[c] for c in remaining]))
                tokens = np.flatnonzero(index == m)
                if len(tokens):
                    self.pairs.append((float(adv[tokens[0]]), q))
                remaining.discard(entry.item_id)
        return index >= 0

    def _grad_norms(self, rollouts: Sequence[Any], masks: Sequence[np.ndarray]) -> dict[str, float]:
        import torch

        from flexbench.train.optim.forward import pack, score_completions

        pad = self.tokenizer.pad_token_id
        supports = [r.support for r in rollouts] if rollouts[0].support is not None else None
        batch = pack([r.prompt_ids for r in rollouts], [r.completion_ids for r in rollouts], pad, supports)
        width = batch.completion.shape[1]
        adv = torch.zeros(len(rollouts), width)
        item = torch.zeros(len(rollouts), width)
        for i, (r, m) in enumerate(zip(rollouts, masks, strict=True)):
            adv[i, :len(r.advantages)] = torch.as_tensor(r.advantages, dtype=torch.float32)
            item[i, :len(m)] = torch.as_tensor(m, dtype=torch.float32)
        params = [p for p in self.model.parameters() if p.requires_grad]
        n = float(batch.completion_mask.sum())
        out = {}
        with torch.enable_grad():  # the loop samples under no_grad
            logp = score_completions(self.model, batch).logprobs
            for name, mask in (("item", item), ("other", batch.completion_mask * (1 - item))):
                loss = -(adv * logp * mask).sum() / n
                grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                out[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
        return out

    def summary(self) -> dict[str, Any]:
        """The recorded figures (module docstring); advantage figures are None for PPO methods."""
        def stats(x: list[float]) -> dict[str, float] | None:
            a = np.asarray(x, dtype=np.float64)
            return None if not len(a) else {"n": len(a), "mean": float(a.mean()),
                                            "mean_abs": float(np.abs(a).mean()), "std": float(a.std())}
        pairs = np.asarray(self.pairs, dtype=np.float64).reshape(-1, 2)
        informative = pairs[(pairs[:, 0] != 0) & (pairs[:, 1] != 0)]
        agree = float(np.mean(np.sign(informative[:, 0]) == np.sign(informative[:, 1]))) if len(informative) else None
        corr = float(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) if len(pairs) > 2 and pairs[:, 0].std() > 0 else None
        return {"adv_item": stats(self.adv["item"]), "adv_other": stats(self.adv["other"]),
                "sign_agreement": agree, "corr_adv_quality": corr, "n_entries": len(pairs),
                "weight_spread": float(np.mean(self.weight_spread)) if self.weight_spread else None,
                "net_adv_abs": float(np.mean(np.abs(self.net_adv))) if self.net_adv else None,
                "grad_norms": self.grad_norms}


RESULT_FILE = "result.json"


def run_job_cached(job: Job) -> dict[str, Any]:
    """:func:`run_job`, or the result a previous run of the same job left in its directory.

    The result is written (atomically) once the job has finished, keyed by the
    whole job description, so an interrupted testbed rerun with the same
    ``--work-dir`` redoes only the jobs that had not finished.
    """
    import dataclasses
    import json
    import os

    key = json.dumps(dataclasses.asdict(job), sort_keys=True, default=str)
    path = Path(job.out_dir) / RESULT_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            if stored.get("key") == key:
                return {**stored["result"], "cached": True}
        except (json.JSONDecodeError, KeyError):
            pass
    result = run_job(job)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "result": result}))
    os.replace(tmp, path)
    return result


def run_job(job: Job) -> dict[str, Any]:
    """Train one (method, seed) of the testbed and evaluate it (module docstring)."""
    import torch
    from credit_task import tiny_model

    from flexbench.llm.backends import TransformersBackend
    from flexbench.train.config import TrainConfig
    from flexbench.train.curves import METRICS_FILE, read_metrics
    from flexbench.train.loop import PolicyTrainer
    from flexbench.train.methods import get_method
    from flexbench.train.tasks import TaskSampler
    from flexbench.train.validation import PolicyValidator
    from flexbench.vocabulary import get_need

    wall, cpu = time.perf_counter(), time.process_time()
    torch.set_num_threads(1)
    shared, s = _shared(job), job.setting
    need = get_need("interest")
    model = tiny_model(shared.tokenizer, hidden=s["hidden"], layers=s["layers"], seed=job.seed)
    if job.start_state:
        model.load_state_dict(torch.load(job.start_state, map_location="cpu", weights_only=True))
    reference = copy.deepcopy(model).eval() if s["kl_coef"] > 0 else None
    p, g = s["prompts_per_step"], s["group_size"]
    cfg = TrainConfig(model="credit-tiny", steps=s["sft_steps"] if job.sft_only else s["steps"],
                      prompts_per_step=p, group_size=g, lr=s["lr"], reward_cutoff=job.reward_cutoff,
                      constrained=True, max_new_tokens=2 * s["k"] + 2, kl_coef=s["kl_coef"],
                      entropy_coef=s["entropy_coef"], micro_batch_size=p * g, eval_every=s["eval_every"],
                      save_every=10**9, sft_warmup_steps=job.warmup, sft_lr=s["lr"], sft_batch_size=p,
                      seed=job.seed)
    tasks = TaskSampler(shared.splits["train"], [need], {need.name: _provider(shared, job.signal, job.critic_dir)},
                        seed=job.seed)
    valid = shared.splits["valid"][: s["eval_instances"]]
    validator = PolicyValidator(shared.tokenizer, {need.name: (need, valid, shared.labels["valid"])},
                                max_new_tokens=cfg.max_new_tokens, constrained=True, seed=0, batch_size=len(valid))
    out = Path(job.out_dir)
    trainer = PolicyTrainer(cfg, get_method(job.method), model, shared.tokenizer, tasks, out,
                            backend=TransformersBackend(model, shared.tokenizer, batch_size=p),
                            reference=reference, validator=validator, progress=False)
    true = {i: np.asarray(lab.gains) for i, lab in shared.labels["train"].items()}
    probe = CreditProbe(trainer.sampler, shared.tokenizer, model, true,
                        [job.warmup + x for x in (0, s["steps"] // 2, s["steps"] - 1)])
    trainer.sampler = probe
    trainer.train(resume=False)
    if job.save_state:
        torch.save(model.state_dict(), out / "policy-state.pt")
    # steps counted from the start of RL: an SFT warm-up's validations sit at negative steps
    curve = [(int(r["step"]) - job.warmup, float(r["ndcg@5"])) for r in read_metrics(out / METRICS_FILE, "valid")]
    train = read_metrics(out / METRICS_FILE, "train")
    return {"label": job.label, "seed": job.seed, "curve": curve,
            "test": _test_scores(model, shared, cfg.max_new_tokens, s["test_instances"]),
            "train": {k: [float(r.get(k, np.nan)) for r in train if r.get("phase") == "rl"]
                      for k in ("reward_mean", "ndcg_mean", "entropy", "kl", "grad_norm", "reward_var_observed")},
            "probe": probe.summary(), "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def _test_scores(model: Any, shared: _Shared, max_new_tokens: int, n: int) -> dict[str, float]:
    """Greedy NDCG@5 of every test instance (by instance ID)."""
    from flexbench.harness import score_batch
    from flexbench.llm.backends import TransformersBackend
    from flexbench.train.policy_ranker import PolicyRanker
    from flexbench.vocabulary import get_need

    test = shared.splits["test"][:n]
    ranker = PolicyRanker("policy", TransformersBackend(model, shared.tokenizer, batch_size=len(test)),
                          shared.tokenizer, max_new_tokens=max_new_tokens, constrained=True, seed=0)
    records = score_batch(test, ranker.rank(test, get_need("interest")), shared.labels["test"], seed=0, strict=False)
    return {r.instance_id: float(r.metrics["ndcg@5"]) for r in records}
