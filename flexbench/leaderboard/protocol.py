"""Protocol cards: what a board's numbers were measured on, stated beside every board.

A card names the dataset and its data fingerprint, the split, K, the candidate
generator and its encoder, the history length, the need and its parameters
(beta for novelty, alpha for trend, the ESCI grades), the number of instances,
the protocol version, the number P of display orders each instance was ranked
under (``--permutations``, :mod:`flexbench.display`), the code versions of the runs (``+dirty`` where a run was
made from uncommitted code), the rows limited to ``n`` of ``N`` instances, and
two reference lines on the chart metric (NDCG@5):

* the random floor: the stored ``random`` run's value when there is a complete
  one, else the exact expectation over the split's labels. Under a uniformly
  random permutation every rank ``j`` holds each of the ``K`` candidates with
  probability ``1 / K``, so ``E[DCG@k] = mean(g) · Σ_{j <= min(k, K)} 1 / log2(j + 1)``
  and ``E[NDCG@k] = E[DCG@k] / IDCG@k`` per instance (0 where IDCG@k = 0), averaged.
* the oracle: the stored ``oracle-<need>`` run's value, else the share of
  instances with ``IDCG@k > 0`` (the oracle scores 1 there and 0 elsewhere).

Facts about the data come from the prepared dataset's ``meta.json`` (its
prepare config) and, where the meta does not record them (the mock), from its
instances -- and only when its fingerprint equals the runs': a card never
describes other data than the numbers were computed on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flexbench.errors import FlexBenchError
from flexbench.metrics import discounts, ideal_order
from flexbench.types import RunResult

if TYPE_CHECKING:
    from flexbench.prepared import PreparedDataset

CHART_METRIC = "ndcg@5"
NOT_RECORDED = "not recorded"

CANDIDATE_RULES: dict[str, str] = {
    "kuairec": "top-K by the frozen retriever's cosine to the history's query vector (history excluded)",
    "ml-1m": "the user's future-rated items (up to {ml_future}) plus unrated fillers{filler}, by the "
             "frozen retriever",
    "esci": "the query's judged products (the top K by the frozen retriever where a query has more)",
    "mock": "top-K by the mock's noisy synthetic retriever (flexbench.mock)",
}
"""Candidate generator of each dataset key (:mod:`flexbench.datasets.candidates`, :mod:`flexbench.datasets.search`)."""

NEED_PARAMETERS: dict[str, tuple[str, ...]] = {"novelty": ("beta",), "novelty-v2": ("beta",),
                                               "trend": ("alpha",), "trend-v2": ("alpha",)}


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference value on the chart metric and where it comes from (``value`` None: unknown)."""

    value: float | None
    source: str


@dataclass(frozen=True, slots=True)
class DataFacts:
    """What the prepared data says about the protocol (``not recorded`` where it says nothing)."""

    k: str = NOT_RECORDED
    candidates: str = NOT_RECORDED
    encoder: str = NOT_RECORDED
    history: str = NOT_RECORDED
    need_parameters: str = "no parameters"
    n_instances: int | None = None
    protocol_version: str = NOT_RECORDED


@dataclass(frozen=True, slots=True)
class ProtocolCard:
    """The protocol of one board (module docstring); every text field is ready to show.

    ``n_instances`` and ``protocol_version`` are the runs' own where they record them, else the data's.
    """

    dataset: str
    split: str
    need: str
    fingerprints: tuple[str, ...]
    data: DataFacts = DataFacts()
    n_instances: int | None = None
    protocol_version: str = NOT_RECORDED
    code_versions: tuple[str, ...] = ()
    limited: tuple[str, ...] = ()
    random_floor: Reference = Reference(None, NOT_RECORDED)
    oracle: Reference = Reference(None, NOT_RECORDED)
    data_note: str = ""
    metric: str = CHART_METRIC
    display_orders: str = "1 per instance"

    @property
    def dirty(self) -> bool:
        """Whether any run on the board was made from uncommitted code."""
        return any(v.endswith("+dirty") for v in self.code_versions)

    def fields(self) -> list[tuple[str, str]]:
        """``(label, text)`` pairs in display order: the one source of the card's text for every renderer."""
        def ref(r: Reference) -> str:
            return f"{r.value:.4f} ({r.source})" if r.value is not None else r.source

        fp = ", ".join(f[:12] for f in self.fingerprints) or NOT_RECORDED
        out = [("dataset", f"{self.dataset} (data {fp})" + (f"; {self.data_note}" if self.data_note else "")),
               ("split", self.split), ("K", self.data.k), ("candidates", self.data.candidates),
               ("encoder", self.data.encoder), ("history", self.data.history),
               ("need", f"{self.need} ({self.data.need_parameters})"),
               ("instances", NOT_RECORDED if self.n_instances is None else str(self.n_instances)),
               ("protocol", self.protocol_version), ("display orders P", self.display_orders),
               ("code", ", ".join(self.code_versions) or NOT_RECORDED),
               (f"random floor {_title(self.metric)}", ref(self.random_floor)),
               (f"oracle {_title(self.metric)}", ref(self.oracle))]
        if self.limited:
            out.append(("limited rows", "; ".join(self.limited)))
        return out


def _title(metric: str) -> str:
    name, _, k = metric.partition("@")
    return f"{name.upper()}@{k}" if name == "ndcg" else metric


def code_label(value: Any) -> str:
    """``d37dbd69eb8b+dirty`` from a run's ``code_version`` provenance (package version without git)."""
    if isinstance(value, Mapping):
        if value.get("git_commit"):
            return f"{str(value['git_commit'])[:12]}{'+dirty' if value.get('dirty') else ''}"
        return f"flexbench {value.get('package', '?')} (no git)"
    return str(value) if value not in (None, "") else NOT_RECORDED


def load_prepared(name: str) -> PreparedDataset | None:
    """The prepared dataset ``name`` under ``<data>/prepared`` if it is there (never prepares one)."""
    from flexbench.paths import prepared_dir
    from flexbench.prepared import PreparedDataset

    path = prepared_dir() / name
    if not (path / "meta.json").exists():
        return None
    try:
        return PreparedDataset(path)
    except (FlexBenchError, ValueError, OSError, KeyError):
        return None


PreparedResolver = Callable[[str], "PreparedDataset | None"]


def _need_parameters(need: str, config: Mapping[str, Any]) -> str:
    if need == "esci":
        from needs.esci import GRADES

        return "gains " + ", ".join(f"{g}={v:g}" for g, v in GRADES.items())
    names = NEED_PARAMETERS.get(need, ())
    if not names:
        return "no parameters"
    if "build" not in config:
        return ", ".join(f"{n} {NOT_RECORDED}" for n in names)
    from flexbench.datasets.sequential import BuildConfig

    try:
        build = BuildConfig(**dict(config["build"] or {}))
    except (TypeError, ValueError):
        return ", ".join(f"{n} {NOT_RECORDED}" for n in names)
    return ", ".join(f"{n} = {getattr(build, n):g}" for n in names)


def _candidates(key: str, config: Mapping[str, Any], protocol: int | None) -> str:
    rule = CANDIDATE_RULES.get(key, NOT_RECORDED)
    if key == "ml-1m":
        from flexbench.datasets.sequential import BuildConfig

        try:
            build = BuildConfig(**dict(config.get("build") or {}))
            filler = getattr(build, "filler", None)  # the filler rule, where the config has one
            rule = rule.format(ml_future=build.ml_future, filler=f" ({filler})" if filler else "")
        except (TypeError, ValueError):
            rule = rule.format(ml_future="?", filler="?")
    if protocol is not None and protocol >= 2:
        rule += "; stored in a seeded hash order"
    return rule


def _facts(data: PreparedDataset, split: str, need: str) -> tuple[DataFacts, tuple[np.ndarray, ...]]:
    """The data's facts and the gains of ``need`` per instance of ``split``."""
    config = data.meta.get("config") or {}
    instances = data.instances(split)
    ks = sorted({x.k for x in instances})
    histories = sorted({len(x.history) for x in instances})
    queries = any(x.query is not None for x in instances)
    k = str(config["k"]) if "k" in config else "/".join(map(str, ks)) or NOT_RECORDED
    if queries:
        history = "none (a query per instance)"
    elif "history_len" in config:
        history = f"last {config['history_len']} interactions (at least {config.get('min_history', '?')})"
    else:
        history = f"{'/'.join(map(str, histories))} interactions" if histories else NOT_RECORDED
    labels = data.labels(need, split) if need in data.needs else {}
    gains = tuple(np.asarray(labels[x.instance_id].gains, dtype=np.float64) for x in instances
                  if x.instance_id in labels)
    protocol = data.meta.get("protocol_version")  # PreparedDataset.protocol_version where it exists
    encoder = config.get("encoder") or ("synthetic embeddings" if data.dataset == "mock" else NOT_RECORDED)
    return DataFacts(k=k, candidates=_candidates(data.dataset, config, protocol), encoder=str(encoder),
                     history=history, need_parameters=_need_parameters(need, config), n_instances=len(instances),
                     protocol_version=NOT_RECORDED if protocol is None else str(protocol)), gains


def expected_random(gains: Sequence[np.ndarray], k: int) -> float | None:
    """Exact mean ``E[NDCG@k]`` of a uniformly random permutation (module docstring); None without instances."""
    values = []
    for g in gains:
        if not len(g):
            continue
        idcg = float(ideal_order(g[None, :])[0, :k] @ discounts(min(k, len(g))))
        values.append(0.0 if idcg <= 0 else float(g.mean() * discounts(min(k, len(g))).sum() / idcg))
    return float(np.mean(values)) if values else None


def oracle_share(gains: Sequence[np.ndarray]) -> float | None:
    """The oracle's NDCG@k: the share of instances with a positive gain (IDCG@k > 0 for every k)."""
    return float(np.mean([float(np.any(g > 0)) for g in gains])) if gains else None


def _stored(runs: Sequence[RunResult], name: str, metric: str) -> Reference | None:
    for run in runs:
        if run.key.ranker == name and run.complete and metric in run.metrics:
            n = f"{run.n_instances} instances"
            return Reference(float(run.metrics[metric]), f"stored `{name}` run, {n}")
    return None


def _limited(runs: Sequence[RunResult]) -> tuple[str, ...]:
    out = []
    for run in runs:
        limit, available = run.provenance.get("limit"), run.provenance.get("n_available")
        if limit and available and int(limit) < int(available):
            state = "" if run.complete else f" (incomplete, {run.n_instances} so far)"
            out.append(f"{run.key.ranker}: {limit} of {available}{state}")
    return tuple(out)


def display_orders(runs: Sequence[RunResult]) -> str:
    """``3 per instance`` when every run used P = 3, else each P with its rows: ``3 (zero-shot), 1 (others)``."""
    by_p: dict[int, list[str]] = {}
    for run in runs:
        by_p.setdefault(int(run.provenance.get("permutations") or 1), []).append(run.key.ranker)
    if len(by_p) <= 1:
        return f"{next(iter(by_p), 1)} per instance"
    most = max(by_p, key=lambda p: (len(by_p[p]), -p))
    named = [f"{p} ({', '.join(by_p[p])})" for p in sorted(by_p, reverse=True) if p != most]
    return "; ".join([*named, f"{most} (others)"]) + " per instance"


def build_card(runs: Sequence[RunResult], resolve: PreparedResolver | None = None, *,
               metric: str = CHART_METRIC) -> ProtocolCard:
    """The card of one board's runs (same dataset, need and split); ``resolve`` finds the prepared data."""
    key = runs[0].key
    prov = [r.provenance for r in runs]
    fingerprints = tuple(sorted({str(p.get("data_fingerprint")) for p in prov if p.get("data_fingerprint")}))
    data = (resolve or load_prepared)(key.dataset)
    facts, gains, note = DataFacts(), (), ""
    if data is not None and fingerprints == (data.fingerprint,):
        facts, gains = _facts(data, key.split, key.need)
    elif data is not None:
        note = f"the prepared data here has fingerprint {data.fingerprint[:12]}, not the runs'; details not shown"
    elif fingerprints:
        note = "no prepared copy here; details not shown"
    versions = sorted({str(p["protocol_version"]) for p in prov if p.get("protocol_version") is not None})
    available = [int(p["n_available"]) for p in prov if p.get("n_available")]
    k_cut = int(metric.partition("@")[2] or 5)
    floor = _stored(runs, "random", metric) or _computed(expected_random(gains, k_cut), gains, "exact expectation")
    oracle = _stored(runs, f"oracle-{key.need}", metric) or _computed(oracle_share(gains), gains,
                                                                      "share of instances with a positive gain")
    return ProtocolCard(
        dataset=key.dataset, split=key.split, need=key.need, fingerprints=fingerprints, data=facts,
        n_instances=max(available) if available else facts.n_instances,
        protocol_version=", ".join(versions) if versions else facts.protocol_version,
        code_versions=tuple(sorted({code_label(p.get("code_version")) for p in prov})),
        limited=_limited(runs), random_floor=floor, oracle=oracle, data_note=note, metric=metric,
        display_orders=display_orders(runs))


def _computed(value: float | None, gains: Sequence[np.ndarray], how: str) -> Reference:
    if value is None:
        return Reference(None, NOT_RECORDED)
    return Reference(value, f"{how} over the {len(gains)} instances' labels")
