"""Popularity: candidates ranked by their number of training interactions.

``score(c) = |{(u, c) in interactions : split(u) = train}|`` — every observable
interaction of a training user counts once (KuaiRec: the 10% sparse view).
Candidates never seen in training score 0; ties are broken by item ID. The
ranking is the same for every need and every seed.
"""

from __future__ import annotations

from collections.abc import Sequence

from baselines.scoring import rank_by_score
from flexbench.ranker import RankerContext, RankerUnavailable
from flexbench.types import Instance, NeedSpec, Ranking, Split


class PopularityRanker:
    """Training-interaction counts of each candidate, ties by item ID."""

    def __init__(self, ctx: RankerContext) -> None:
        self.name = str(ctx.options.get("registry_name", "popularity"))
        interactions = ctx.dataset.interactions(Split.TRAIN)
        if interactions.empty:
            raise RankerUnavailable(f"popularity needs training interactions; {ctx.dataset.name!r} has none")
        self.counts: dict[str, int] = interactions["item_id"].astype(str).value_counts().to_dict()

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One ranking per instance, in input order (the need is ignored)."""
        return [Ranking(x.instance_id, rank_by_score(x.candidate_ids, [self.counts.get(c, 0) for c in x.candidate_ids]))
                for x in instances]
