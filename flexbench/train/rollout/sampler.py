"""Sample G rollouts per training prompt, parse them, and attach per-token credit.

For each :class:`~flexbench.train.tasks.PromptTask`: build the prompt with the
LLM layer (:func:`flexbench.llm.prompts.build_prompt`), sample ``G``
completions with a :class:`GenerationBackend` (transformers ``generate`` on
the live policy, or vLLM with weights synced after each update), decode each
completion with its token character offsets
(:func:`flexbench.llm.parsing.decode_with_offsets`), parse it with
:func:`flexbench.llm.parsing.parse_ranking`, compute the group's credit
(:mod:`flexbench.train.credit.assign`) and map it onto the tokens with
:func:`flexbench.train.credit.tokens.token_advantages`.

Constrained rollouts also carry their support, the token IDs the sampler
allowed at each step (:func:`flexbench.llm.constrained.support_of`, the same
trie and EOS set as the sampler's logits processor), so that the update scores
them under the distribution they were drawn from (SPEC 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from flexbench.repair import stable_rng
from flexbench.train.config import TrainConfig
from flexbench.train.credit.assign import GroupCredit, group_credit, list_ndcg, reward_row
from flexbench.train.credit.tokens import token_advantages, token_item_index
from flexbench.train.methods import MethodSpec
from flexbench.train.optim.forward import encode_prompt
from flexbench.train.optim.ppo import token_rewards
from flexbench.train.tasks import PromptTask


@dataclass(frozen=True)
class Rollout:
    """One sampled completion with its credit.

    ``advantages`` are the per-token advantages (GRPO methods); ``rewards`` the
    per-token rewards for GAE (PPO methods; zeros otherwise) and ``weight`` the
    rollout's uncertainty weight, applied to GAE advantages later.
    ``sampling_logprobs`` are the rollout engine's log-probs of the completion
    tokens when it reports them (vLLM), for the ``logprob_gap`` metric.
    """

    group: int
    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    text: str
    advantages: np.ndarray
    rewards: np.ndarray
    weight: float
    seq_reward: float
    ndcg: float
    parsed: bool
    n_entries: int
    n_valid: int
    sampling_logprobs: tuple[float, ...] | None = None
    segments: tuple[int, ...] = ()  # answer entry of each completion token, -1 outside (Rank-GRPO's ratio)
    support: tuple[tuple[int, ...], ...] | None = None  # constrained: the allowed token IDs at each step
    ndcg_observed: float | None = None  # the list's NDCG with imputed gains set to 0 (observed_variance_share)


def _entry_last_tokens(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    index = token_item_index(offsets, spans)
    last = [-1] * len(spans)
    for t, m in enumerate(index):
        if m >= 0:
            last[int(m)] = t
    return last


def credit_rollouts(task: PromptTask, group: int, prompt_ids: Sequence[int], completions: Sequence[Sequence[int]],
                    tokenizer: Any, method: MethodSpec, cfg: TrainConfig, step: int) -> list[Rollout]:
    """Parse the completions of one prompt and attach their per-token credit."""
    from flexbench.llm.parsing import decode_with_offsets, parse_ranking

    decoded = [decode_with_offsets(tokenizer, ids) for ids in completions]
    parsed = [parse_ranking(text, task.instance.candidate_ids, mode=cfg.prompt_mode) for text, _ in decoded]
    rows = [reward_row(p, task.instance.candidate_ids, task.gains, task.variances,
                       stable_rng("rollout-pad", cfg.seed, step, task.position, i))
            for i, p in enumerate(parsed)]
    credit: GroupCredit = group_credit(rows, task.gains, method, cutoff=cfg.reward_cutoff,
                                       clip=cfg.uncertainty_clip, eps=cfg.adv_eps)
    observed = _observed_ndcg(task, parsed, cfg, step)
    out = []
    for i, ((text, offsets), p, ids) in enumerate(zip(decoded, parsed, completions, strict=True)):
        spans = [e.span for e in p.entries]
        adv = token_advantages(offsets, spans, credit.entry_adv[i], float(credit.seq_adv[i]))
        rew = token_rewards(len(ids), _entry_last_tokens(offsets, spans), credit.entry_reward[i],
                            float(credit.final_reward[i]))
        out.append(Rollout(group, tuple(prompt_ids), tuple(ids), text, adv, rew, float(credit.weights[i]),
                           float(credit.seq_reward[i]), float(credit.ndcg[i]), bool(p.parsed),
                           len(p.entries), int(sum(e.status == "valid" for e in p.entries)),
                           segments=tuple(int(m) for m in token_item_index(offsets, spans)),
                           ndcg_observed=None if observed is None else float(observed[i])))
    return out


def _observed_ndcg(task: PromptTask, parsed: Sequence[Any], cfg: TrainConfig, step: int) -> np.ndarray | None:
    """Each rollout's list NDCG with the imputed gains set to 0 (same padding draws, same IDCG)."""
    if task.observed is None:
        return None
    gains = np.where(task.observed, task.gains, 0.0)
    rows = [reward_row(p, task.instance.candidate_ids, gains, task.variances,
                       stable_rng("rollout-pad", cfg.seed, step, task.position, i))
            for i, p in enumerate(parsed)]
    return list_ndcg(rows, task.gains, cfg.reward_cutoff)


class RolloutSampler:
    """Sample and credit the rollouts of a batch of tasks with a generation backend."""

    def __init__(self, backend: Any, tokenizer: Any, method: MethodSpec, cfg: TrainConfig) -> None:
        self.backend, self.tokenizer, self.method, self.cfg = backend, tokenizer, method, cfg

    def sample(self, tasks: Sequence[PromptTask], step: int) -> list[Rollout]:
        """``G`` rollouts per task, grouped by task, in task order."""
        from flexbench.llm.backends import SamplingParams
        from flexbench.llm.prompts import build_prompt

        cfg = self.cfg
        prompts = [build_prompt(t.instance, t.need, seed=cfg.seed + t.position, tokenizer=self.tokenizer,
                                **cfg.prompt_options)
                   for t in tasks]
        params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                top_p=cfg.top_p, n=cfg.group_size, seed=_sample_seed(cfg.seed, step))
        shown = [p.shown_ids for p in prompts] if cfg.constrained else None
        generations = self.backend.generate([p.text for p in prompts], params, candidate_ids=shown)
        out: list[Rollout] = []
        for g, (task, prompt, gens) in enumerate(zip(tasks, prompts, generations, strict=True)):
            prompt_ids = encode_prompt(self.tokenizer, prompt.text)
            credited = credit_rollouts(task, g, prompt_ids, [list(x.token_ids) for x in gens], self.tokenizer,
                                       self.method, cfg, step)
            out += [replace(r, sampling_logprobs=x.logprobs,
                            support=self._support(prompt.shown_ids, x.token_ids) if cfg.constrained else None)
                    for r, x in zip(credited, gens, strict=True)]
        return out

    def _support(self, shown_ids: Sequence[str], tokens: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        from flexbench.llm.constrained import support_of

        eos = getattr(self.backend, "eos_token_ids", None)
        if eos is None:
            raise ValueError(f"{type(self.backend).__name__} reports no eos_token_ids: constrained rollouts "
                             "cannot be scored under their sampling distribution")
        return tuple(support_of(self.tokenizer, shown_ids, tokens, eos))


def _sample_seed(seed: int, step: int) -> int:
    return int(stable_rng("rollout-sample", seed, step).integers(2**31 - 1))
