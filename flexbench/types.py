"""Typed core of FlexBench: what a ranker sees, what it returns, and what a run records.

Data flow: raw files -> :class:`Instance` (+ :class:`NeedLabels`) -> ranker ->
:class:`Ranking` -> repair -> :class:`RepairedRanking` -> metrics ->
:class:`InstanceRecord` -> :class:`RunResult`.

An :class:`Instance` never carries labels: labels live in :class:`NeedLabels`,
which only the harness and the need oracles read (SPEC section 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Split(StrEnum):
    """User-level split of a prepared dataset (ESCI uses its official train/test)."""

    TRAIN = "train"
    VALID = "valid"
    TEST = "test"


class Signal(StrEnum):
    """A per-item signal that a need's prompts show (:attr:`NeedSpec.shows`)."""

    TOPICS = "topics"
    RECENT_COUNT = "recent_count"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate item: its stable ID and the item text shown to models (SPEC section 2).

    Optional signals stored at prepare time (docs/PROTOCOL.md): ``topics`` (KuaiRec ``feat``
    tags, ML-1M genres), ``retrieval_score`` (the frozen retriever's cosine to the user or
    query vector; the candidate order never carries it) and ``recent_count`` (the
    candidate's interactions by any user in the 24 h before the query time, the trend
    label's count). ``None`` / ``()`` where the dataset has no such signal.
    """

    item_id: str
    text: str
    topics: tuple[str, ...] = ()
    retrieval_score: float | None = None
    recent_count: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One past interaction of the user, most recent last.

    ``engagement`` is the dataset's feedback (KuaiRec watch ratio, ML-1M rating);
    ``timestamp`` is Unix seconds, or ``None`` where the raw data has none; ``topics``
    as for :class:`Candidate`.
    """

    item_id: str
    text: str
    engagement: float
    timestamp: int | None = None
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Instance:
    """A ranking task ``x = (u, C)``; the need ``n`` comes with the request (SPEC section 1).

    Exactly one of ``history`` (non-empty) and ``query`` describes the context:
    recommendation datasets give a history, ESCI gives a query.
    Candidates are in their stored order: since protocol 2 a seeded hash order that carries
    no label or retrieval signal (docs/PROTOCOL.md); the retriever's score is
    :attr:`Candidate.retrieval_score`. ``display_ids`` is the display order the harness
    chose for this presentation (:mod:`flexbench.display`; LLM prompts show candidates in
    exactly that order); empty when none was chosen (prompts then use the default order).
    """

    instance_id: str
    dataset: str
    split: Split
    candidates: tuple[Candidate, ...]
    user_id: str | None = None
    history: tuple[HistoryItem, ...] = ()
    query: str | None = None
    query_time: int | None = None
    display_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.candidates:
            raise ValueError(f"instance {self.instance_id!r} has no candidates")
        ids = [c.item_id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"instance {self.instance_id!r} has duplicate candidate IDs")
        if self.display_ids and sorted(self.display_ids) != sorted(ids):
            raise ValueError(f"instance {self.instance_id!r}: display_ids must be a permutation of its candidates")
        if not self.history and self.query is None:
            raise ValueError(f"instance {self.instance_id!r} needs a history or a query")

    @property
    def candidate_ids(self) -> tuple[str, ...]:
        """Candidate item IDs in stored order (not the retriever's order; see the class docstring)."""
        return tuple(c.item_id for c in self.candidates)

    @property
    def k(self) -> int:
        """Number of candidates ``K``."""
        return len(self.candidates)


@dataclass(frozen=True, slots=True)
class NeedSpec:
    """A need as a ranker sees it: its name, display title, prompt instruction and the signals prompts show.

    ``shows`` names the per-item :class:`Signal` s that prompts of this need display
    beside each item (novelty: topics; trend: the 24 h interaction count).
    """

    name: str
    title: str
    instruction: str
    shows: tuple[Signal, ...] = ()


@dataclass(frozen=True, slots=True)
class NeedLabels:
    """Ground truth of one need for one instance.

    ``gains[i]`` is the need's relevance score of ``candidate_ids[i]`` (linear gain
    in NDCG); ``relevant`` is the binary relevant set for Recall/Precision/MRR
    (SPEC section 3).
    """

    instance_id: str
    need: str
    candidate_ids: tuple[str, ...]
    gains: tuple[float, ...]
    relevant: frozenset[str]

    def __post_init__(self) -> None:
        if len(self.gains) != len(self.candidate_ids):
            raise ValueError(f"labels of {self.instance_id!r}: {len(self.gains)} gains for "
                             f"{len(self.candidate_ids)} candidates")
        if not self.relevant <= set(self.candidate_ids):
            raise ValueError(f"labels of {self.instance_id!r}: relevant items outside the candidates")

    def gain_of(self) -> dict[str, float]:
        """Map item ID -> gain."""
        return dict(zip(self.candidate_ids, self.gains, strict=True))


@dataclass(frozen=True, slots=True)
class Ranking:
    """What a ranker returned for one instance, before repair.

    ``item_ids`` is the output as emitted: it may hold invalid IDs, duplicates or
    too few items. ``raw_output`` is the generated text of LLM rankers (``None``
    for score-based rankers); ``parsed`` is False when no list could be read from
    it, which strict mode scores as 0 (SPEC section 4).
    """

    instance_id: str
    item_ids: tuple[str, ...]
    raw_output: str | None = None
    parsed: bool = True
    prompt: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RepairedRanking:
    """A ranking after SPEC section 4 repair: always a permutation of the K candidates."""

    instance_id: str
    item_ids: tuple[str, ...]
    n_valid: int
    n_invalid: int
    n_duplicate: int
    n_padded: int
    parsed: bool


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One line of a run's JSONL: everything needed to recompute or audit the score.

    ``permutation`` is the index ``p`` of the display order the ranker received
    (:mod:`flexbench.display`) and ``display_ids`` that order (empty in records made
    before display orders were stored: it is then display order 0 of the run's seed).
    """

    instance_id: str
    raw_output: str | None
    prompt: str | None
    parsed: bool
    output_ids: tuple[str, ...]
    repaired_ids: tuple[str, ...]
    n_invalid: int
    n_duplicate: int
    n_padded: int
    metrics: Mapping[str, float]
    permutation: int = 0
    display_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunKey:
    """Identifies a stored run: one JSON per (ranker, dataset, need, split) (STYLE pattern 5).

    ``ranker`` is the display label of the method (e.g. ``flexrec`` or
    ``flexrec[train=interest]``); ``train_need`` names the need a trained method
    was trained on, for the generalisation tables.
    """

    ranker: str
    dataset: str
    need: str
    split: str = Split.TEST.value

    def path_parts(self) -> tuple[str, ...]:
        """Path components of this run under the results root."""
        return (self.dataset, self.need, self.split, self.ranker)


@dataclass(frozen=True, slots=True)
class RunResult:
    """Aggregate of one run, as stored in its JSON file (schema in :mod:`flexbench.results`).

    ``metrics`` are means over ``n_instances``; ``rates`` hold
    ``invalid_rate``, ``duplicate_rate``, ``parse_failure_rate`` and ``pad_rate``.
    ``provenance`` holds code version, data fingerprint, seed, model, hardware,
    config and timestamps.
    """

    key: RunKey
    n_instances: int
    metrics: Mapping[str, float]
    rates: Mapping[str, float]
    provenance: Mapping[str, Any]
    complete: bool = True
