"""Periodic validation of the live policy: greedy rankings scored by the harness on valid instances.

For each need, the policy ranks the first ``eval_instances`` valid instances
with :class:`~flexbench.train.policy_ranker.PolicyRanker` (the same prompts,
backend and parser as ``flexbench eval``), and
:func:`flexbench.harness.score_batch` repairs and scores them. One line per
need goes to ``metrics.jsonl``::

    {"need", "n", "ndcg@5", "ndcg@10", "ndcg@30", "recall@5", ..., "reward_mean",
     "parse_failure_rate", "invalid_rate", ...}

The token cap is the checkpoint evaluation's (:func:`~flexbench.train.policy_ranker.token_cap`
of the run's config). With a colocated vLLM rollout engine (:meth:`PolicyValidator.use_engine`)
validation generates through that engine, which holds the policy's weights after
every push, in one call per need and process; otherwise through transformers
``generate`` on the live policy.

``reward_mean`` is the mean sequence reward of those greedy outputs under the
*true* labels: NDCG of the repaired list (cutoff K) plus the Rec-R1 format term
(:func:`flexbench.train.credit.rewards.sequence_rewards`), defined for every method
and step, SFT included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flexbench.harness import aggregate_rates, score_batch
from flexbench.metrics import mean_metrics
from flexbench.train.credit.rewards import ideal_dcg, ndcg, sequence_rewards
from flexbench.train.policy_ranker import PolicyRanker
from flexbench.types import Instance, InstanceRecord, NeedLabels, NeedSpec


class PolicyValidator:
    """Callable ``(policy, step) -> lines``, as :class:`~flexbench.train.loop.PolicyTrainer` expects."""

    def __init__(self, tokenizer: Any, sets: Mapping[str, tuple[NeedSpec, Sequence[Instance],
                                                                 Mapping[str, NeedLabels]]],
                 *, max_new_tokens: int, constrained: bool = False, seed: int = 0, batch_size: int = 8,
                 prompt_options: Mapping[str, Any] | None = None) -> None:
        self.tokenizer, self.sets = tokenizer, dict(sets)
        self.prompt_options = dict(prompt_options or {})
        self.max_new_tokens, self.constrained, self.seed = max_new_tokens, constrained, seed
        self.batch_size = batch_size
        self.engine: Any = None  # a rollout engine holding the policy's weights (use_engine)

    def use_engine(self, backend: Any) -> None:
        """Generate through ``backend`` (the colocated vLLM rollout engine, synced after every update)."""
        if self.constrained:
            raise ValueError("constrained validation runs on transformers generate only")
        self.engine = backend

    def __call__(self, policy: Any, step: int) -> list[dict[str, Any]]:
        return self.lines(self.records(policy))

    def records(self, policy: Any, share: tuple[int, int] = (0, 1)) -> dict[str, list[tuple[int, InstanceRecord]]]:
        """Scored records of this process's share ``(rank, world)`` of each need's instances, by position.

        Under several processes each ranks ``instances[rank::world]``; the loop
        gathers the shares and :meth:`lines` summarises them on the main process.
        """
        from flexbench.llm.backends import TransformersBackend

        backend = self.engine or TransformersBackend(policy, self.tokenizer, batch_size=self.batch_size)
        ranker = PolicyRanker("policy", backend, self.tokenizer, max_new_tokens=self.max_new_tokens,
                              constrained=self.constrained, seed=self.seed, prompt_options=self.prompt_options)
        rank, world = share
        out = {}
        for name, (need, instances, labels) in self.sets.items():
            positions = list(range(rank, len(instances), world))
            mine = [instances[i] for i in positions]
            records = score_batch(mine, ranker.rank(mine, need), labels, seed=self.seed, strict=False) if mine else []
            out[name] = list(zip(positions, records, strict=True))
        return out

    def lines(self, *shares: Mapping[str, Sequence[tuple[int, InstanceRecord]]]) -> list[dict[str, Any]]:
        """One metrics line per need over the records of all ``shares`` (in instance order)."""
        lines = []
        for name in self.sets:
            _, _, labels = self.sets[name]
            records = [r for _, r in sorted((pr for s in shares for pr in s.get(name, ())), key=lambda pr: pr[0])]
            lines.append({"need": name, "n": len(records), **mean_metrics([r.metrics for r in records]),
                          "reward_mean": float(np.mean(validation_rewards(records, labels))),
                          **aggregate_rates(records)})
        return lines


def validation_rewards(records: Sequence[InstanceRecord], labels: Mapping[str, NeedLabels]) -> np.ndarray:
    """Sequence reward of each scored record under the true labels (module docstring)."""
    out = []
    for rec in records:
        lab = labels[rec.instance_id]
        gain = lab.gain_of()
        ranked = np.array([[gain[i] for i in rec.repaired_ids]])
        value = ndcg(ranked, ideal_dcg(np.array([lab.gains])))[0]
        perm = rec.n_invalid == 0 and rec.n_duplicate == 0 and rec.n_padded == 0
        out.append(sequence_rewards(np.array([value]), np.array([rec.parsed]), np.array([perm]))[0])
    return np.asarray(out, dtype=np.float64)
