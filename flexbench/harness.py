"""``evaluate``: run a ranker over instances, repair, score, store (orchestration only).

Per batch of instances: ``ranker.rank`` -> check one :class:`Ranking` per
instance, in order -> :func:`flexbench.repair.repair` -> :mod:`flexbench.metrics`
-> one :class:`InstanceRecord` each, appended to the result store before the
next batch starts. A rerun skips the (instance, permutation) pairs already stored,
so an interrupted run (Ctrl-C, ``kill -9``) resumes without losing or double
counting one; the final aggregate is computed from the stored records.

Display orders (``permutations = P``): each instance is ranked under ``P``
display orders ``p = 0 .. P-1`` (:func:`flexbench.display.present`, seeded by
``(seed, instance, p)``), each stored as its own record with ``permutation`` and
``display_ids``. A run's metrics are the mean over instances of the per-instance
means over the permutations (:func:`flexbench.order_stats.merge_trials`); rates
are over all trials. ``P = 1`` stores what it always stored, under the same
config, so runs made before display orders existed resume and compare unchanged.

Rates reported beside the metrics (SPEC section 4)::

    invalid_rate       = sum(n_invalid)   / sum(emitted IDs)
    duplicate_rate     = sum(n_duplicate) / sum(emitted IDs)
    parse_failure_rate = #(not parsed)    / #instances
    pad_rate           = sum(n_padded)    / sum(K)

Strict mode scores an unparseable output (``Ranking.parsed`` False) 0 on every
metric; otherwise it is scored after repair, like any other output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flexbench.display import present
from flexbench.errors import FlexBenchError
from flexbench.metrics import mean_metrics, score_rankings, zero_metrics
from flexbench.order_stats import merge_trials
from flexbench.ranker import Ranker
from flexbench.repair import repair
from flexbench.results import VERSION_KEYS, ResultStore, code_version, hardware, trial_key
from flexbench.types import Instance, InstanceRecord, NeedLabels, NeedSpec, Ranking, RunKey, RunResult

RATE_NAMES: tuple[str, ...] = ("invalid_rate", "duplicate_rate", "parse_failure_rate", "pad_rate")


class RankerOutputError(FlexBenchError):
    """A ranker broke the interface: not one Ranking per instance, in input order."""


def check_rankings(ranker: Ranker, batch: Sequence[Instance], rankings: Sequence[Ranking]) -> None:
    """Raise :class:`RankerOutputError` unless ``rankings`` match ``batch`` one to one, in order."""
    if not isinstance(rankings, Sequence) or len(rankings) != len(batch):
        got = len(rankings) if isinstance(rankings, Sequence) else type(rankings).__name__
        raise RankerOutputError(f"ranker {ranker.name!r} returned {got} rankings for a batch of "
                                f"{len(batch)} instances; it must return one per instance")
    for position, (instance, ranking) in enumerate(zip(batch, rankings, strict=True)):
        if not isinstance(ranking, Ranking) or ranking.instance_id != instance.instance_id:
            found = getattr(ranking, "instance_id", type(ranking).__name__)
            raise RankerOutputError(f"ranker {ranker.name!r}: ranking {position} of the batch is for "
                                    f"{found!r}, expected {instance.instance_id!r} (input order)")


def score_batch(batch: Sequence[Instance], rankings: Sequence[Ranking], labels: Mapping[str, NeedLabels],
                *, seed: int, strict: bool, permutations: Sequence[int] | None = None) -> list[InstanceRecord]:
    """Repair and score one batch of checked rankings; ``permutations[i]`` is the display order
    ``batch[i]`` was shown (its ``display_ids`` are stored with the record)."""
    repaired = [repair(r, x.candidate_ids, seed=seed) for x, r in zip(batch, rankings, strict=True)]
    metrics = score_rankings([r.item_ids for r in repaired], [labels[x.instance_id] for x in batch])
    perms = permutations if permutations is not None else [0] * len(batch)
    return [
        InstanceRecord(
            instance_id=out.instance_id, raw_output=raw.raw_output, prompt=raw.prompt, parsed=raw.parsed,
            output_ids=tuple(raw.item_ids), repaired_ids=out.item_ids, n_invalid=out.n_invalid,
            n_duplicate=out.n_duplicate, n_padded=out.n_padded,
            metrics=zero_metrics() if strict and not raw.parsed else m, permutation=p, display_ids=x.display_ids,
        )
        for x, raw, out, m, p in zip(batch, rankings, repaired, metrics, perms, strict=True)
    ]


def aggregate_rates(records: Sequence[InstanceRecord]) -> dict[str, float]:
    """The four rates of the module docstring over ``records`` (0 where a denominator is 0)."""
    emitted = sum(len(r.output_ids) for r in records)
    slots = sum(len(r.repaired_ids) for r in records)

    def ratio(num: float, den: float) -> float:
        return float(num / den) if den else 0.0

    return {
        "invalid_rate": ratio(sum(r.n_invalid for r in records), emitted),
        "duplicate_rate": ratio(sum(r.n_duplicate for r in records), emitted),
        "parse_failure_rate": ratio(sum(not r.parsed for r in records), len(records)),
        "pad_rate": ratio(sum(r.n_padded for r in records), slots),
    }


def check_labels(instances: Sequence[Instance], labels: Mapping[str, NeedLabels]) -> None:
    """Every instance needs labels aligned with its candidates."""
    for x in instances:
        lab = labels.get(x.instance_id)
        if lab is None:
            raise FlexBenchError(f"no labels for instance {x.instance_id!r}; prepare the dataset again")
        if tuple(lab.candidate_ids) != x.candidate_ids:
            raise FlexBenchError(f"labels of {x.instance_id!r} do not match its candidates; "
                                 f"prepare the dataset again")


DEFAULT_BATCH_SIZE = 16
"""Instances per ranker call (``flexbench eval --batch-size``)."""


def evaluate(
    ranker: Ranker,
    instances: Sequence[Instance],
    labels: Mapping[str, NeedLabels],
    need: NeedSpec,
    *,
    key: RunKey | None = None,
    seed: int = 0,
    strict: bool = False,
    store: ResultStore | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    limit: int | None = None,
    config: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    permutations: int = 1,
) -> RunResult:
    """Evaluate ``ranker`` on ``instances`` (first ``limit``) for ``need``; see the module docstring.

    ``config`` (method options) plus ``seed``, ``strict`` and ``permutations`` (when
    above 1) must match a stored run to resume it; ``provenance`` adds fields to the
    stored provenance (its ``data_fingerprint`` is checked on resume too). Without
    ``store`` nothing is written. Returns the aggregate over the evaluated instances.
    """
    if batch_size < 1:
        raise FlexBenchError(f"--batch-size must be at least 1, got {batch_size}")
    if permutations < 1:
        raise FlexBenchError(f"--permutations must be at least 1, got {permutations}")
    if limit is not None and limit < 1:
        raise FlexBenchError(f"--limit must be at least 1, got {limit}")
    if not instances:
        raise FlexBenchError("no instances to evaluate; check the dataset and --split")
    chosen = list(instances[:limit] if limit is not None else instances)
    check_labels(chosen, labels)
    key = key or RunKey(ranker.name, chosen[0].dataset, need.name, chosen[0].split.value)
    full_config = {**dict(config or {}), "seed": seed, "strict": strict,
                   **({"permutations": permutations} if permutations > 1 else {})}
    prov = _provenance(full_config, provenance, seed=seed, strict=strict, limit=limit,
                       n_available=len(instances))
    prov["permutations"] = permutations
    hold = contextlib.ExitStack()  # the run's lock (flexbench.results.ResultStore.writer), until the end
    if store is not None:
        writer = hold.enter_context(store.writer(key, config=full_config, overwrite=overwrite,
                                                 data_fingerprint=str(prov["data_fingerprint"]),
                                                 versions={k: prov[k] for k in VERSION_KEYS if k in prov}))
        done, append = writer.done, writer.append
    else:
        done = {}

        def append(records: Sequence[InstanceRecord]) -> None:
            done.update((trial_key(r), r) for r in records)

    with hold:
        todo = [(x, p) for x in chosen for p in range(permutations) if (x.instance_id, p) not in done]
        total = len(chosen) * permutations
        prov["n_resumed"] = total - len(todo)
        if store is not None:
            store.write_aggregate(_aggregate(key, chosen, list(done.values()), prov, permutations, complete=False))
        label = f"{key.ranker} · {key.dataset}/{key.need}" + (f" · {permutations} orders" if permutations > 1 else "")
        with _progress(total, total - len(todo), label, progress) as advance:
            for start in range(0, len(todo), batch_size):
                pairs = todo[start:start + batch_size]
                batch = [present(x, seed, p) for x, p in pairs]
                rankings = ranker.rank(batch, need)
                check_rankings(ranker, batch, rankings)
                append(score_batch(batch, rankings, labels, seed=seed, strict=strict,
                                   permutations=[p for _, p in pairs]))
                advance(len(batch))
        stored = store.load_trials(key) if store is not None else list(done.values())
        prov["finished_at"] = _now()
        result = _aggregate(key, chosen, stored, prov, permutations, complete=True)
        if store is not None:
            store.write_aggregate(result)
    return result


def _aggregate(key: RunKey, chosen: Sequence[Instance], trials: Sequence[InstanceRecord],
               prov: Mapping[str, Any], permutations: int, *, complete: bool) -> RunResult:
    """Aggregate the instances of ``chosen`` that have all ``permutations`` trials, in instance order
    (deterministic float sums): metrics over per-instance means, rates over their trials."""
    wanted = {(x.instance_id, p) for x in chosen for p in range(permutations)}
    mine = [t for t in trials if trial_key(t) in wanted]
    counts: dict[str, int] = {}
    for t in mine:
        counts[t.instance_id] = counts.get(t.instance_id, 0) + 1
    merged = {r.instance_id: r for r in merge_trials(mine)}
    ordered = [merged[x.instance_id] for x in chosen if counts.get(x.instance_id) == permutations]
    if complete and len(ordered) != len(chosen):
        raise FlexBenchError(f"run {key.ranker}: {len(chosen) - len(ordered)} instances missing from "
                             f"the store after evaluation")
    ids = {r.instance_id for r in ordered}
    return RunResult(key=key, n_instances=len(ordered), metrics=mean_metrics([r.metrics for r in ordered]),
                     rates=aggregate_rates([t for t in mine if t.instance_id in ids]), provenance=dict(prov),
                     complete=complete)


def _provenance(config: Mapping[str, Any], extra: Mapping[str, Any] | None, *, seed: int, strict: bool,
                limit: int | None, n_available: int) -> dict[str, Any]:
    base: dict[str, Any] = {
        "code_version": code_version(), "hardware": hardware(), "data_fingerprint": "unknown",
        "model": None, "train_need": None, "started_at": _now(), "finished_at": None,
    }
    base.update(extra or {})
    base.update(config=dict(config), seed=seed, strict=strict, limit=limit, n_available=n_available)
    return base


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def _progress(total: int, completed: int, label: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar (or a no-op) yielding ``advance(n)``."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(label, total=total, completed=completed)
        yield lambda n: bar.advance(task, n)
