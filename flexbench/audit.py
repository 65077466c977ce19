"""Protocol audit of a prepared dataset: can a trivial ranker read the labels? (``flexbench data audit``).

For every need of the dataset, on one split, the audit measures NDCG@5 of

* ``random``: the exact expectation of a uniformly random permutation
  (:func:`baselines.scoring.expected_random_ndcg`);
* ``candidate-order``: the candidates in their stored order;
* ``popularity``: the popularity baseline (training interactions);
* ``topic-match`` and ``star``: the two training-free rankers that read the history
  (:mod:`baselines.topic_match`, :mod:`baselines.star`; ``None`` where they cannot run);
* ``retriever``: the candidates by the frozen retriever's stored score
  (:attr:`~flexbench.types.Candidate.retrieval_score`; ``None`` where the
  prepared data stores none);
* ``oracle``: the need's own oracle (1 wherever an instance has a positive gain);

and reports the niche share (candidates that have topics, none of which occurs
in the history: the novelty needs' bonus set) and the label density (share of
candidates with gain > 0). It warns when

* a trivial ranker (``random``, ``candidate-order``, ``popularity``) comes within
  :data:`NEAR_ORACLE` (0.1) of the oracle: the need is solved without the user;
* the stored order is more than :data:`ORDER_TOLERANCE` (0.05) from random: the
  order carries label or retrieval signal that any ranker could exploit;

and notes when ranking by the retriever's own score comes within 0.1 of the
oracle (the label follows the retriever's similarity: the paper-protocol novelty
label, see docs/PROTOCOL.md; on the synthetic ESCI sample the grades do too).
:func:`popularity_auc` measures whether popularity tells labelled candidates from
zero-gain fillers (ML-1M).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext, RankerUnavailable, build_ranker
from flexbench.types import Instance, NeedLabels, Split

NEAR_ORACLE = 0.1
ORDER_TOLERANCE = 0.05
METRIC = "ndcg@5"
TRIVIAL = ("random", "candidate-order", "popularity")


@dataclass(frozen=True, slots=True)
class AuditRow:
    """Audit figures of one need (NDCG@5 per ranker; ``None`` where a ranker cannot run)."""

    need: str
    n_instances: int
    scores: dict[str, float | None]
    niche_share: float | None
    label_density: float
    warnings: tuple[str, ...] = field(default=())


def _ndcg5(rankings: Sequence[Sequence[str]], labels: Sequence[NeedLabels]) -> float:
    from flexbench.fidelity import ndcg5

    return ndcg5(rankings, labels)


def niche_share(dataset: PreparedDataset, instances: Sequence[Instance]) -> float | None:
    """Share of candidates with topics, none of which occurs in the instance's history (``None``: no topics)."""
    topics = dataset.items["topics"].to_dict()
    if not any(len(t) for t in topics.values()) or not any(x.history for x in instances):
        return None
    niche = total = 0
    for x in instances:
        seen = {t for h in x.history for t in topics[h.item_id]}
        for c in x.candidate_ids:
            own = set(topics[c])
            niche += bool(own) and not own & seen
            total += 1
    return niche / total if total else None


def _retriever_rankings(instances: Sequence[Instance]) -> list[tuple[str, ...]] | None:
    if any(c.retrieval_score is None for x in instances for c in x.candidates):
        return None
    return [tuple(c.item_id for c in sorted(x.candidates, key=lambda c: (-float(c.retrieval_score), c.item_id)))
            for x in instances]


def _ranker_rankings(dataset: PreparedDataset, name: str, instances: Sequence[Instance], need: str,
                     seed: int) -> list[tuple[str, ...]] | None:
    """Rankings of registered ranker ``name``, ``None`` where it cannot run on ``dataset``."""
    from flexbench.vocabulary import get_need

    try:
        ranker = build_ranker(name, RankerContext(dataset, seed=seed))
    except RankerUnavailable:
        return None
    return [r.item_ids for r in ranker.rank(instances, get_need(need))]


def _oracle_rankings(labels: Sequence[NeedLabels]) -> list[tuple[str, ...]]:
    """The need's own oracle (:mod:`needs.oracle`): candidates by ``(-gain, item_id)``."""
    from flexbench.fidelity import oracle_order

    return [oracle_order(lab) for lab in labels]


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every need's audit of the same instances shares (need-agnostic rankings, niche share)."""

    rankings: dict[str, list[tuple[str, ...]] | None]
    niche_share: float | None


NEED_AGNOSTIC = ("popularity", "topic-match", "star")


def _shared(dataset: PreparedDataset, instances: Sequence[Instance], seed: int) -> _Shared:
    need = dataset.needs[0]  # these rankers ignore the need
    rankings = {name: _ranker_rankings(dataset, name, instances, need, seed) for name in NEED_AGNOSTIC}
    return _Shared({**rankings, "retriever": _retriever_rankings(instances)}, niche_share(dataset, instances))


def audit_need(dataset: PreparedDataset, need: str, instances: Sequence[Instance], *,
               split: Split | str | None = None, seed: int = 0, shared: _Shared | None = None) -> AuditRow:
    """The :class:`AuditRow` of ``need`` over ``instances`` (labels read for ``split`` when given)."""
    from baselines.scoring import expected_random_ndcg

    shared = shared or _shared(dataset, instances, seed)
    by_id = dataset.labels(need, split)
    labels = [by_id[x.instance_id] for x in instances]
    scores: dict[str, float | None] = {"random": expected_random_ndcg(labels, k=5)}
    scores["candidate-order"] = _ndcg5([x.candidate_ids for x in instances], labels)
    for name, ranked in shared.rankings.items():
        scores[name] = None if ranked is None else _ndcg5(ranked, labels)
    scores["oracle"] = _ndcg5(_oracle_rankings(labels), labels)
    gains = np.concatenate([np.asarray(lab.gains, dtype=np.float64) for lab in labels]) if labels else np.zeros(0)
    density = float((gains > 0).mean()) if len(gains) else 0.0
    return AuditRow(need, len(instances), scores, shared.niche_share, density, tuple(row_warnings(scores)))


def row_warnings(scores: dict[str, float | None]) -> list[str]:
    """The warnings and notes of one need's scores (module docstring)."""
    out = []
    oracle, rand = scores.get("oracle"), scores["random"]
    for name in TRIVIAL:
        value = scores.get(name)
        if value is not None and oracle is not None and value >= oracle - NEAR_ORACLE:
            out.append(f"WARNING {name} {value:.3f} is within {NEAR_ORACLE} of the oracle {oracle:.3f}")
    order = scores.get("candidate-order")
    if order is not None and rand is not None and abs(order - rand) > ORDER_TOLERANCE:
        out.append(f"WARNING the stored candidate order ({order:.3f}) is {abs(order - rand):.3f} from random "
                   f"({rand:.3f}): it carries label or retrieval signal")
    retriever = scores.get("retriever")
    if retriever is not None and oracle is not None and retriever >= oracle - NEAR_ORACLE:
        out.append(f"note: ranking by the retriever's own score ({retriever:.3f}) is within {NEAR_ORACLE} of the "
                   f"oracle: the label follows the retriever's similarity")
    return out


def audit_dataset(dataset: PreparedDataset, split: Split | str = Split.TEST, *, limit: int | None = None,
                  seed: int = 0) -> list[AuditRow]:
    """One :class:`AuditRow` per need of ``dataset`` on ``split`` (at most ``limit`` instances)."""
    instances = dataset.instances(split, limit=limit)
    if not instances:
        from flexbench.errors import FlexBenchError

        raise FlexBenchError(f"dataset {dataset.name!r} has no {Split(split).value!r} instances to audit")
    shared = _shared(dataset, instances, seed)
    return [audit_need(dataset, need, instances, split=split, seed=seed, shared=shared) for need in dataset.needs]


def need_switch(dataset: PreparedDataset, split: Split | str = Split.TEST, *,
                limit: int | None = None) -> pd.DataFrame | None:
    """The need-switch matrix of ``dataset`` (:func:`flexbench.fidelity.switch_matrix`; ``None``: one need)."""
    from flexbench.fidelity import switch_matrix

    if len(dataset.needs) < 2:
        return None
    ids = [x.instance_id for x in dataset.instances(split, limit=limit)]
    by_need = {need: dataset.labels(need, split) for need in dataset.needs}
    return switch_matrix({need: [by_id[i] for i in ids] for need, by_id in by_need.items()})


def popularity_auc(dataset: PreparedDataset, need: str = "interest", split: Split | str = Split.TEST) -> float | None:
    """AUC of the popularity ranker's counts between candidates with gain > 0 and with gain 0.

    ``P(count(pos) > count(neg)) + 0.5 P(=)`` over all (positive, zero) candidate pairs of
    the same split (ties by mid-rank); 0.5 means popularity cannot tell labelled items
    from fillers. ``None`` where ``need`` has no zero-gain (or no positive) candidates.
    """
    from scipy.stats import rankdata

    from baselines.scoring import resolve_train_source, training_log

    counts = training_log(dataset, resolve_train_source(dataset, "auto"))["item_id"].astype(str).value_counts()
    lookup = counts.to_dict()
    pos, neg = [], []
    for lab in dataset.labels(need, split).values():
        for item, gain in zip(lab.candidate_ids, lab.gains, strict=True):
            (pos if gain > 0 else neg).append(lookup.get(item, 0))
    if not pos or not neg:
        return None
    ranks = rankdata(np.array(pos + neg, dtype=np.float64))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
