"""Popularity: candidates ranked by their number of training interactions.

``score(c) = |{(u, c) in L : split(u) = train}|`` over the training log ``L``
that BERT4Rec also learns from (:func:`baselines.scoring.resolve_train_source`):
KuaiRec's organic log (the big matrix of training users) where the prepared
dataset stores one, else the observable interactions (ML-1M: all ratings).
Option ``train_on`` (``auto``, ``observed``, ``organic``) overrides the choice.
Candidates never seen in training score 0; ties are broken by item ID. The
ranking is the same for every need and every seed.
"""

from __future__ import annotations

from collections.abc import Sequence

from baselines.scoring import rank_by_score, resolve_train_source, training_log
from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.types import Instance, NeedSpec, Ranking


class PopularityRanker(RankerBase):
    """Training-interaction counts of each candidate, ties by item ID."""

    def __init__(self, ctx: RankerContext) -> None:
        self.name = str(ctx.options.get("registry_name", "popularity"))
        self.train_on = resolve_train_source(ctx.dataset, str(ctx.options.get("train_on", "auto")))
        interactions = training_log(ctx.dataset, self.train_on)
        if interactions.empty:
            raise RankerUnavailable(f"popularity needs training interactions; {ctx.dataset.name!r} has none")
        self.counts: dict[str, int] = interactions["item_id"].astype(str).value_counts().to_dict()
        self.model = f"counts of training interactions ({self.train_on} log)"

    def provenance(self, need: str) -> dict[str, str]:
        """What the counts were taken from."""
        return {"model": self.model}

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One ranking per instance, in input order (the need is ignored)."""
        return [Ranking(x.instance_id, rank_by_score(x.candidate_ids, [self.counts.get(c, 0) for c in x.candidate_ids]))
                for x in instances]
