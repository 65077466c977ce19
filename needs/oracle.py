"""The oracle of a need: ranks candidates by that need's own ground-truth score (SPEC section 1).

On its own need it is the ideal ranking (NDCG = 1 wherever IDCG > 0); on the
other needs it is an ordinary ranker, which measures how far the needs
disagree. Ties are broken by item ID (ascending), so the ranking is
deterministic and independent of the candidate order.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexbench.errors import FlexBenchError
from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.types import Instance, NeedSpec, Ranking


class OracleRanker(RankerBase):
    """Ranks by the labels of ``options["oracle_need"]``, read from the prepared dataset."""

    def __init__(self, ctx: RankerContext) -> None:
        need = ctx.options.get("oracle_need")
        if not need:
            raise RankerUnavailable("the oracle needs an 'oracle_need' option")
        if need not in ctx.dataset.needs:
            raise RankerUnavailable(f"dataset {ctx.dataset.name!r} has no {need!r} labels "
                                    f"(it has {', '.join(ctx.dataset.needs)})")
        self.name = str(ctx.options.get("registry_name", f"oracle-{need}"))
        self.need = str(need)
        self._gains = {iid: lab.gain_of() for iid, lab in ctx.dataset.labels(self.need).items()}

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """Candidates sorted by ``(-score, item_id)`` under the oracle's own need."""
        out = []
        for x in instances:
            gains = self._gains.get(x.instance_id)
            if gains is None:
                raise FlexBenchError(f"oracle-{self.need}: no labels for instance {x.instance_id!r}")
            order = sorted(x.candidate_ids, key=lambda item: (-gains[item], item))
            out.append(Ranking(x.instance_id, tuple(order)))
        return out
