"""``evaluate``: run a ranker over instances, repair, score, store (orchestration only).

Per batch of instances: ``ranker.rank`` -> check one :class:`Ranking` per
instance, in order -> :func:`flexbench.repair.repair` -> :mod:`flexbench.metrics`
-> one :class:`InstanceRecord` each, appended to the result store before the
next batch starts. A rerun skips the instance IDs already stored, so an
interrupted run (Ctrl-C, ``kill -9``) resumes without losing or double counting
an instance; the final aggregate is computed from the stored records.

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

from flexbench.errors import FlexBenchError
from flexbench.metrics import mean_metrics, score_rankings, zero_metrics
from flexbench.ranker import Ranker
from flexbench.repair import repair
from flexbench.results import VERSION_KEYS, ResultStore, code_version, hardware
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
                *, seed: int, strict: bool) -> list[InstanceRecord]:
    """Repair and score one batch of checked rankings."""
    repaired = [repair(r, x.candidate_ids, seed=seed) for x, r in zip(batch, rankings, strict=True)]
    metrics = score_rankings([r.item_ids for r in repaired], [labels[x.instance_id] for x in batch])
    return [
        InstanceRecord(
            instance_id=out.instance_id, raw_output=raw.raw_output, prompt=raw.prompt, parsed=raw.parsed,
            output_ids=tuple(raw.item_ids), repaired_ids=out.item_ids, n_invalid=out.n_invalid,
            n_duplicate=out.n_duplicate, n_padded=out.n_padded,
            metrics=zero_metrics() if strict and not raw.parsed else m,
        )
        for raw, out, m in zip(rankings, repaired, metrics, strict=True)
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
) -> RunResult:
    """Evaluate ``ranker`` on ``instances`` (first ``limit``) for ``need``; see the module docstring.

    ``config`` (method options) plus ``seed`` and ``strict`` must match a stored
    run to resume it; ``provenance`` adds fields to the stored provenance (its
    ``data_fingerprint`` is checked on resume too). Without ``store`` nothing
    is written. Returns the aggregate over the evaluated instances.
    """
    if batch_size < 1:
        raise FlexBenchError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise FlexBenchError(f"--limit must be at least 1, got {limit}")
    if not instances:
        raise FlexBenchError("no instances to evaluate; check the dataset and --split")
    chosen = list(instances[:limit] if limit is not None else instances)
    check_labels(chosen, labels)
    key = key or RunKey(ranker.name, chosen[0].dataset, need.name, chosen[0].split.value)
    full_config = {**dict(config or {}), "seed": seed, "strict": strict}
    prov = _provenance(full_config, provenance, seed=seed, strict=strict, limit=limit,
                       n_available=len(instances))
    hold = contextlib.ExitStack()  # the run's lock (flexbench.results.ResultStore.writer), until the end
    if store is not None:
        writer = hold.enter_context(store.writer(key, config=full_config, overwrite=overwrite,
                                                 data_fingerprint=str(prov["data_fingerprint"]),
                                                 versions={k: prov[k] for k in VERSION_KEYS if k in prov}))
        done, append = writer.done, writer.append
    else:
        done = {}

        def append(records: Sequence[InstanceRecord]) -> None:
            done.update((r.instance_id, r) for r in records)

    with hold:
        todo = [x for x in chosen if x.instance_id not in done]
        prov["n_resumed"] = len(chosen) - len(todo)
        if store is not None:
            store.write_aggregate(_aggregate(key, chosen, done, prov, complete=False))
        with _progress(len(chosen), len(chosen) - len(todo), f"{key.ranker} · {key.dataset}/{key.need}",
                       progress) as advance:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                rankings = ranker.rank(batch, need)
                check_rankings(ranker, batch, rankings)
                append(score_batch(batch, rankings, labels, seed=seed, strict=strict))
                advance(len(batch))
        stored = {r.instance_id: r for r in store.load_records(key)} if store is not None else done
        prov["finished_at"] = _now()
        result = _aggregate(key, chosen, stored, prov, complete=True)
        if store is not None:
            store.write_aggregate(result)
    return result


def _aggregate(key: RunKey, chosen: Sequence[Instance], records: Mapping[str, InstanceRecord],
               prov: Mapping[str, Any], *, complete: bool) -> RunResult:
    """Aggregate the records of ``chosen`` in instance order (deterministic float sums)."""
    ordered = [records[x.instance_id] for x in chosen if x.instance_id in records]
    if complete and len(ordered) != len(chosen):
        raise FlexBenchError(f"run {key.ranker}: {len(chosen) - len(ordered)} instances missing from "
                             f"the store after evaluation")
    return RunResult(key=key, n_instances=len(ordered), metrics=mean_metrics([r.metrics for r in ordered]),
                     rates=aggregate_rates(ordered), provenance=dict(prov), complete=complete)


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
