"""The one ``Ranker`` interface and the explicit registry table of every method.

Every method — need oracles, classic baselines, LLMs, trained policies — is a
:class:`Ranker`: a batch of instances and a need in, one :class:`Ranking` per
instance out, in input order (STYLE pattern 1). Methods are named in one table,
:data:`REGISTRY`, imported lazily (STYLE pattern 2): ``flexbench rankers`` lists
them without importing torch or RecBole.

A factory receives a :class:`RankerContext` and returns a ranker, or raises
:class:`RankerUnavailable` with a one-line reason when it cannot run here (no API
key, no checkpoint, dataset not supported). ``flexbench eval --all`` prints that
reason and moves on.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from flexbench.errors import FlexBenchError
from flexbench.options import lookup, suggest
from flexbench.train.methods import METHODS
from flexbench.types import Instance, NeedSpec, Ranking

if TYPE_CHECKING:
    from flexbench.prepared import PreparedDataset


@runtime_checkable
class Ranker(Protocol):
    """Ranks the candidates of each instance for a need.

    ``rank`` must return exactly one :class:`Ranking` per instance, in input
    order, with ``Ranking.instance_id`` equal to the instance's ID. The output
    may be imperfect (invalid IDs, duplicates, too few items): the harness
    repairs it and counts every defect.

    Two hooks complete the interface; :class:`RankerBase` gives both a default,
    and :func:`build_ranker` adapts a ranker that defines neither (a plugin with
    only ``name`` and ``rank``), so the suite never probes for them:

    * ``check_available(need)`` raises :class:`RankerUnavailable` when this
      ranker cannot rank ``need`` (a policy trained for another need); the suite
      calls it before a run starts, so no empty run is stored. Default: available.
    * ``provenance(need)`` is what the run of ``need`` records about the ranker:
      ``model`` (a string naming the model or method state), ``train_need``,
      ``checkpoint`` and any method settings. Default: ``{}``.
    """

    name: str

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]: ...

    def check_available(self, need: str) -> None: ...

    def provenance(self, need: str) -> Mapping[str, Any]: ...


class RankerBase:
    """Defaults of the optional :class:`Ranker` hooks; every built-in ranker inherits them."""

    name: str

    def check_available(self, need: str) -> None:
        """Every need is available unless a subclass says otherwise."""

    def provenance(self, need: str) -> Mapping[str, Any]:
        """Nothing to record unless a subclass says otherwise."""
        return {}


@runtime_checkable
class _MinimalRanker(Protocol):
    name: str

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]: ...


class _WithDefaultHooks(RankerBase):
    """A ranker that defines only ``name`` and ``rank``, completed with :class:`RankerBase`'s hooks."""

    def __init__(self, inner: _MinimalRanker) -> None:
        self.inner, self.name = inner, inner.name

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        return self.inner.rank(instances, need)


def as_ranker(obj: object, what: str) -> Ranker:
    """``obj`` as a full :class:`Ranker` (default hooks added to a minimal one); ``TypeError`` otherwise."""
    if isinstance(obj, Ranker):
        return obj
    if isinstance(obj, _MinimalRanker):
        return _WithDefaultHooks(obj)
    raise TypeError(f"{what} returned {type(obj).__name__}, which has no `name` and `rank(instances, need)`")


class RankerUnavailable(FlexBenchError):
    """Raised by a factory that cannot run here; the message is the reason shown to users."""


class UnknownRanker(FlexBenchError):
    """Raised for a name not in :data:`REGISTRY`; the message suggests close names."""


class RankerKind(StrEnum):
    """Groups of the leaderboard (the paper's row groups)."""

    REFERENCE = "reference"
    ORACLE = "oracle"
    CLASSIC = "classic"
    ZERO_SHOT = "zero-shot"
    TRAINED = "trained"
    EXTERNAL = "external"  # run files and rankers from outside this repository (flexbench.plugins)


@dataclass(frozen=True, slots=True)
class RankerContext:
    """What a factory may use to build a ranker.

    ``dataset`` gives training interactions, item embeddings and (for the need
    oracles only) labels. ``options`` are method-specific settings from the CLI
    (``--model``, ``--checkpoint``, ``--base-url`` ...).
    """

    dataset: PreparedDataset
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    cache_dir: Path = Path("data/cache")


Factory = Callable[[RankerContext], Ranker]


@dataclass(frozen=True, slots=True)
class RankerEntry:
    """One row of the registry: a name, where its factory lives, fixed options, and the options it takes.

    ``accepts`` names the user options (``--set k=v``, ``--model``, ``--checkpoint``,
    ``--base-url``) the factory reads, and ``settings`` the config dataclasses
    (``"module:Class"``) whose fields it reads; :func:`build_ranker` refuses any
    other option (besides the run ``label``) before the factory runs, so an
    ignored option is never stored as if it had mattered. ``accepts=None`` (plugins)
    leaves the options unchecked.
    """

    name: str
    target: str  # "module.path:attribute", imported on first use
    kind: RankerKind
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    accepts: tuple[str, ...] | None = ()
    settings: tuple[str, ...] = ()

    def load(self) -> Factory:
        """Import and return the factory named by ``target``."""
        module_name, _, attr = self.target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def accepted_options(self) -> frozenset[str] | None:
        """Every user option this ranker reads (``None``: unchecked), the run ``label`` included."""
        if self.accepts is None:
            return None
        names = {*self.accepts, *RUN_OPTIONS}
        for target in self.settings:
            module_name, _, attr = target.partition(":")
            names |= {f.name for f in dataclasses.fields(getattr(importlib.import_module(module_name), attr))}
        return frozenset(names)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse options this ranker does not read (one line, with close matches)."""
        known = self.accepted_options()
        if known is None:
            return
        for key in options:
            if key not in known and key not in self.options and key != "registry_name":
                takes = ", ".join(sorted(known - set(RUN_OPTIONS))) or "no options"
                raise FlexBenchError(f"ranker {self.name!r} does not take option {key!r}.{suggest(key, known)} "
                                     f"It takes: {takes}.")


RUN_OPTIONS = ("label",)
"""Options every ranker takes: they name the stored run, not the ranker's behaviour."""


def _entries(*rows: RankerEntry) -> dict[str, RankerEntry]:
    table: dict[str, RankerEntry] = {}
    for row in rows:
        if row.name in table:
            raise ValueError(f"duplicate ranker name {row.name!r}")
        table[row.name] = row
    return table


_K = RankerKind
_TRAINED = "flexbench.train.policy_ranker:TrainedPolicyRanker"
_TRAINED_OPTIONS = ("train_need", "checkpoint", "max_new_tokens", "constrained", "device", "batch_size", "engine")
_ZERO_SHOT = "baselines.zero_shot:ZeroShotConfig"

REGISTRY: dict[str, RankerEntry] = _entries(
    RankerEntry("random", "baselines.reference:RandomRanker", _K.REFERENCE,
                "Uniformly random permutation, seeded by (seed, instance id)."),
    RankerEntry("candidate-order", "baselines.reference:CandidateOrderRanker", _K.REFERENCE,
                "The stored candidate order: a seeded hash order, a canary at random level."),
    RankerEntry("oracle-interest", "needs.oracle:OracleRanker", _K.ORACLE,
                "Ranks by the Maximizing Interest labels.", {"oracle_need": "interest"}),
    RankerEntry("oracle-novelty", "needs.oracle:OracleRanker", _K.ORACLE,
                "Ranks by the Explore New Topics labels.", {"oracle_need": "novelty"}),
    RankerEntry("oracle-trend", "needs.oracle:OracleRanker", _K.ORACLE,
                "Ranks by the Trend Promotion labels.", {"oracle_need": "trend"}),
    RankerEntry("oracle-novelty-v2", "needs.oracle:OracleRanker", _K.ORACLE,
                "Ranks by the v2 Explore New Topics labels (interest-based).", {"oracle_need": "novelty-v2"}),
    RankerEntry("oracle-trend-v2", "needs.oracle:OracleRanker", _K.ORACLE,
                "Ranks by the v2 Trend Promotion labels (interest-based).", {"oracle_need": "trend-v2"}),
    RankerEntry("oracle-esci", "needs.oracle:OracleRanker", _K.ORACLE,
                "Ranks by the ESCI grades (E=1, S=0.1, C=0.01, I=0).", {"oracle_need": "esci"}),
    RankerEntry("popularity", "baselines.popularity:PopularityRanker", _K.CLASSIC,
                "Training-interaction counts of each candidate.", accepts=("train_on",)),
    RankerEntry("topic-match", "baselines.topic_match:TopicMatchRanker", _K.CLASSIC,
                "Share of liked history items sharing a topic with the candidate; popularity breaks ties."),
    RankerEntry("star", "baselines.star:STARRanker", _K.CLASSIC,
                "STAR: semantic + collaborative similarity with temporal decay (training-free).",
                accepts=("batch_size",), settings=("baselines.star:STARConfig",)),
    RankerEntry("bert4rec", "baselines.bert4rec:BERT4RecRanker", _K.CLASSIC,
                "RecBole BERT4Rec trained on the training users' sparse sequences.",
                accepts=("checkpoint", "batch_size")),
    RankerEntry("zero-shot", "baselines.zero_shot:ZeroShotRanker", _K.ZERO_SHOT,
                "Local instruction-tuned LLM, greedy, free-form list output.", settings=(_ZERO_SHOT,)),
    RankerEntry("zero-shot-constrained", "baselines.zero_shot:ZeroShotRanker", _K.ZERO_SHOT,
                "Local LLM with decoding constrained to a permutation of the candidate IDs.",
                {"constrained": True}, settings=(_ZERO_SHOT,)),
    RankerEntry("gpt-4o", "baselines.gpt4o:GPT4oRanker", _K.ZERO_SHOT,
                "GPT-4o (or any OpenAI-compatible endpoint) through the openai client.",
                settings=("baselines.gpt4o:GPT4oSettings", "flexbench.llm.backends.openai_backend:OpenAIConfig")),
    RankerEntry("run-file", "baselines.run_file:RunFileRanker", _K.EXTERNAL,
                "Replays a TREC run file produced elsewhere (--set path=FILE), repaired like any output.",
                accepts=("path",)),
    *(RankerEntry(m.name, _TRAINED, _K.TRAINED, m.description, {"method": m.name}, accepts=_TRAINED_OPTIONS)
      for m in METHODS.values()),
)
"""Every ranker by name. The trained rows are derived from :data:`flexbench.train.methods.METHODS`."""


FAMILIES: dict[str, RankerEntry] = _entries(
    RankerEntry("openai", "baselines.gpt4o:GPT4oRanker", _K.ZERO_SHOT,
                "Any model behind an OpenAI-compatible endpoint, one row per model: openai:MODEL --base-url URL.",
                settings=("baselines.gpt4o:GPT4oSettings", "flexbench.llm.backends.openai_backend:OpenAIConfig")),
)
"""Ranker families keyed by a model: ``FAMILY:MODEL`` names one row per model (:func:`family_entry`)."""


def family_entry(name: str) -> RankerEntry | None:
    """The row of ``FAMILY:MODEL`` (e.g. ``openai:gpt-4o-mini``): the family's row named so, with the model
    fixed; ``/`` in the model becomes ``--`` in the row's name (a run's name is a file name). None for other
    names and for a family without a model."""
    family, sep, model = name.partition(":")
    entry = FAMILIES.get(family) if sep else None
    if entry is None or not model.strip():
        return None
    return dataclasses.replace(entry, name=f"{family}:{model.strip().replace('/', '--')}",
                               options={**entry.options, "model": model.strip()})


def get_entry(name: str) -> RankerEntry:
    """The registry row of ``name``, a family's row (``openai:MODEL``, :func:`family_entry`), else an installed
    plugin's or a ``module:factory`` name's (:func:`flexbench.plugins.resolve`); else :class:`UnknownRanker`."""
    from flexbench.plugins import resolve

    if (family := family_entry(name)) is not None:
        return family
    if name.partition(":")[0] in FAMILIES:
        raise UnknownRanker(f"ranker {name!r} names no model; write {name.partition(':')[0]}:MODEL, "
                            f"e.g. openai:gpt-4o-mini")
    external = None if name in REGISTRY else resolve(name)
    return external or lookup(REGISTRY, name, what="ranker", error=UnknownRanker,
                              hint=f"Run `flexbench rankers` to list all {len(REGISTRY)}.")


def build_ranker(entry: RankerEntry | str, ctx: RankerContext) -> Ranker:
    """Build the ranker of ``entry`` (a registry row, or a name to look up); the entry's fixed options
    override ``ctx``'s."""
    entry = get_entry(entry) if isinstance(entry, str) else entry
    entry.check_options(ctx.options)
    merged = {**ctx.options, **entry.options, "registry_name": entry.name}
    ranker = entry.load()(RankerContext(ctx.dataset, ctx.seed, merged, ctx.cache_dir))
    return as_ranker(ranker, f"factory of {entry.name!r}")
