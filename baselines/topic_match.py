"""Topic-match: candidates ranked by how many liked history items share a topic with them.

A reference ranker that reads only what every prompt shows (item topics: KuaiRec ``feat``
tags, ML-1M genres, and the history's engagement). It checks that a sample's labels are
learnable from the item text the way real histories make them (issues 23 and 24): it must
beat popularity where users' tastes follow topics, and stay well below the oracle.

For an instance with history ``H`` let ``H+`` be the liked items,
``{h in H : engagement(h) >= e+}`` with ``e+`` the dataset's ``positive_engagement``
(KuaiRec: a complete play, watch ratio >= 1), or all of ``H`` where the dataset declares none
(ML-1M: what a user chose to rate) or no item qualifies. A candidate ``c`` with topics ``T(c)``
scores

    score(c) = |{h in H+ : T(h) & T(c) != {}}| / |H+|

the share of liked history items sharing at least one topic with ``c``. Ties (candidates
without topics, or with the same share) go to the popularity count of
:class:`baselines.popularity.PopularityRanker`, then to the item ID. The ranking never reads
labels or the stored candidate order, and is the same for every need and seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from baselines.scoring import has_histories, positive_history, resolve_train_source, training_log
from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.types import Instance, NeedSpec, Ranking


def topic_shares(instance: Instance, min_engagement: float | None) -> np.ndarray:
    """``score(c)`` of the module docstring for each candidate, in stored order."""
    liked = set(positive_history(instance.history, min_engagement))
    pool = [h for h in instance.history if h.item_id in liked] or list(instance.history)
    seen = [set(h.topics) for h in pool]
    return np.array([sum(bool(s & set(c.topics)) for s in seen) / len(seen) for c in instance.candidates])


class TopicMatchRanker(RankerBase):
    """Share of liked history items sharing a topic with the candidate; popularity, then ID, break ties."""

    def __init__(self, ctx: RankerContext) -> None:
        self.name = str(ctx.options.get("registry_name", "topic-match"))
        data = ctx.dataset
        if not has_histories(data):
            raise RankerUnavailable(f"topic-match needs user histories; {data.name!r} has queries")
        if not data.items["topics"].map(len).any():
            raise RankerUnavailable(f"topic-match needs item topics; {data.name!r} stores none")
        self.min_engagement = data.positive_engagement
        log = training_log(data, resolve_train_source(data, "auto"))
        self.counts: dict[str, int] = log["item_id"].astype(str).value_counts().to_dict()

    def provenance(self, need: str) -> dict[str, str]:
        """The rule and the liked-item threshold."""
        return {"model": f"topic overlap with liked history items (engagement >= {self.min_engagement}), "
                         f"ties by training popularity"}

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One ranking per instance, in input order (the need is ignored)."""
        out = []
        for x in instances:
            shares = topic_shares(x, self.min_engagement)
            pop = np.array([self.counts.get(c, 0) for c in x.candidate_ids], dtype=np.float64)
            order = np.lexsort((np.asarray(x.candidate_ids, dtype=str), -pop, -shares))
            out.append(Ranking(x.instance_id, tuple(x.candidate_ids[i] for i in order)))
        return out
