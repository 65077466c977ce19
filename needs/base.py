"""Need specifications: names, titles, instructions and which datasets carry each need.

The label formulas live in one module per need (``needs/interest.py`` ...); this
module holds what every part of FlexBench needs to know without computing labels:
the :class:`~flexbench.types.NeedSpec` of each need (used in prompts) and the
dataset -> needs table (SPEC section 3).
"""

from __future__ import annotations

import difflib

from flexbench.errors import FlexBenchError
from flexbench.types import NeedSpec, Signal

INTEREST = NeedSpec(
    name="interest",
    title="Maximizing Interest",
    instruction=(
        "Rank the candidates by how much this user will enjoy and engage with each one, "
        "judging from the items in their history and how strongly they engaged with them. "
        "Put the item the user is most likely to enjoy first."
    ),
)
NOVELTY = NeedSpec(
    name="novelty",
    title="Explore New Topics",
    instruction=(
        "The user wants to explore new topics. Rank first the candidates that match the "
        "user's tastes but come from topics or genres that do not appear in their history; "
        "among items of familiar topics, and among new ones, prefer those closer to the "
        "user's interests."
    ),
    shows=(Signal.TOPICS,),
)
TREND = NeedSpec(
    name="trend",
    title="Trend Promotion",
    instruction=(
        "Promote trending items. Rank first the candidates that are both relevant to this "
        "user and popular on the platform right now (many interactions in the past day), "
        "balancing personal relevance and current popularity equally."
    ),
    shows=(Signal.RECENT_COUNT,),
)
ESCI = NeedSpec(
    name="esci",
    title="Product Search",
    instruction=(
        "Rank the products by how well they match the shopping query. Put products that "
        "exactly satisfy every part of the query first, then usable substitutes, then "
        "complements that go with such a product, and irrelevant products last."
    ),
)

# Better-posed label variants of the same needs (docs/PROTOCOL.md): the same title, instruction and
# signals, hence the same prompts; only the labels differ (built on the user's own feedback instead of
# the retriever's similarity: needs/novelty.py, needs/trend.py).
NOVELTY_V2 = NeedSpec(name="novelty-v2", title=NOVELTY.title, instruction=NOVELTY.instruction, shows=NOVELTY.shows)
TREND_V2 = NeedSpec(name="trend-v2", title=TREND.title, instruction=TREND.instruction, shows=TREND.shows)

NEEDS: dict[str, NeedSpec] = {n.name: n for n in (INTEREST, NOVELTY, TREND, ESCI, NOVELTY_V2, TREND_V2)}

DATASET_NEEDS: dict[str, tuple[str, ...]] = {
    "kuairec": ("interest", "novelty", "trend"),
    "ml-1m": ("interest", "novelty", "trend"),
    "esci": ("esci",),
    "mock": ("interest", "novelty", "trend"),
}
"""The paper's needs per dataset (what ``--needs all`` trains on)."""

LABELLED_NEEDS: dict[str, tuple[str, ...]] = {
    **DATASET_NEEDS,
    "kuairec": (*DATASET_NEEDS["kuairec"], "novelty-v2", "trend-v2"),
    "ml-1m": (*DATASET_NEEDS["ml-1m"], "novelty-v2", "trend-v2"),
}
"""Every need a prepared dataset stores labels for: the paper's needs plus the v2 label variants."""


def get_need(name: str) -> NeedSpec:
    """Return the spec of need ``name``; an unknown name raises with close matches."""
    try:
        return NEEDS[name]
    except KeyError:
        close = difflib.get_close_matches(name, NEEDS, n=2, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise FlexBenchError(f"unknown need {name!r}.{hint} Known: {', '.join(NEEDS)}.") from None


def needs_of(dataset: str) -> tuple[str, ...]:
    """Needs defined on ``dataset``."""
    try:
        return DATASET_NEEDS[dataset]
    except KeyError:
        raise FlexBenchError(f"unknown dataset {dataset!r}. Known: {', '.join(DATASET_NEEDS)}.") from None


def relevant_set(candidate_ids: tuple[str, ...] | list[str], gains: list[float] | tuple[float, ...],
                 k: int = 5) -> frozenset[str]:
    """The need's binary relevant set (SPEC section 3).

    The top-``k`` candidates by score among those with score > 0; ties are
    broken by item ID (ascending) so that the set never depends on input order.
    """
    ranked = sorted((pair for pair in zip(candidate_ids, gains, strict=True) if pair[1] > 0),
                    key=lambda pair: (-pair[1], pair[0]))
    return frozenset(item for item, _ in ranked[:k])


def minmax(values: list[float]) -> list[float]:
    """Min-max normalise to [0, 1]; a constant vector maps to all zeros."""
    lo, hi = min(values), max(values)
    span = hi - lo
    return [0.0 if span == 0 else (v - lo) / span for v in values]
