"""Reference rankers that prove the harness: a seeded random permutation and the stored candidate order.

Since protocol 2 (docs/PROTOCOL.md) candidates are stored in a seeded hash order
(:func:`flexbench.instances.storage_order`) that carries no label or retrieval
signal, so ``candidate-order`` is a canary: it must score like ``random`` on every
need (``flexbench data audit`` checks it within 0.05). Under protocol 1 it was the
retriever's order, which nearly solved the paper's novelty and trend labels.

Random ranker: the expected Recall@k with ``|R|`` relevant items among ``K``
candidates is ``k / K`` (each relevant item lands in the top ``k`` with
probability ``k / K``), e.g. ``5 / 30`` for the default setting.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexbench.ranker import RankerBase, RankerContext
from flexbench.repair import stable_rng
from flexbench.types import Instance, NeedSpec, Ranking


class RandomRanker(RankerBase):
    """A uniformly random permutation of the candidates, seeded by ``(seed, instance_id)``."""

    def __init__(self, ctx: RankerContext) -> None:
        self.name = str(ctx.options.get("registry_name", "random"))
        self.seed = ctx.seed

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One seeded permutation per instance (the need is ignored)."""
        out = []
        for x in instances:
            order = stable_rng("random-ranker", self.seed, x.instance_id).permutation(x.k)
            out.append(Ranking(x.instance_id, tuple(x.candidate_ids[i] for i in order)))
        return out


class CandidateOrderRanker(RankerBase):
    """The candidates in their stored order (module docstring: a canary, not the retriever's order)."""

    def __init__(self, ctx: RankerContext) -> None:
        self.name = str(ctx.options.get("registry_name", "candidate-order"))

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """The candidates as stored."""
        return [Ranking(x.instance_id, x.candidate_ids) for x in instances]
