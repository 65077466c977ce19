"""FlexBench's core vocabulary: the datasets, the needs, and which dataset carries which need.

What every part of FlexBench needs to know without computing labels: the
:class:`DatasetName` of each paper dataset, the :class:`~flexbench.types.NeedSpec`
of each need (its title and instruction, used in prompts, and the signals its
prompt shows) and the dataset -> needs tables (SPEC section 3). The label
formulas live in one module per need (``needs/interest.py`` ...).
"""

from __future__ import annotations

from enum import StrEnum

from flexbench.errors import FlexBenchError
from flexbench.options import lookup
from flexbench.types import NeedSpec, Signal


class DatasetName(StrEnum):
    """The paper's datasets (``kuairec-dense`` and ``mock`` are variants and fixtures, see the catalog)."""

    KUAIREC = "kuairec"
    ML_1M = "ml-1m"
    ESCI = "esci"


PAPER_DATASETS: tuple[str, ...] = tuple(d.value for d in DatasetName)
"""What ``flexbench data prepare`` builds and ``flexbench eval --all`` runs, in the paper's order."""

UNRATED_IS_ZERO: frozenset[str] = frozenset({DatasetName.ML_1M.value})
"""Datasets whose interest label gives a candidate the user never rated gain 0 (``needs/interest.py``).

Their training candidates are all labelled by the observed ratings, so training
gains follow the label rule there (``unrated_gains=auto``,
:func:`flexbench.train.run.gain_signal_for`) instead of imputing the fillers.
"""

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
    return lookup(NEEDS, name, what="need")


def needs_of(dataset: str) -> tuple[str, ...]:
    """Needs defined on ``dataset``."""
    try:
        return DATASET_NEEDS[dataset]
    except KeyError:
        raise FlexBenchError(f"unknown dataset {dataset!r}. Known: {', '.join(DATASET_NEEDS)}.") from None
