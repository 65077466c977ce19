"""Order robustness of a run: how much a ranker's output depends on the display order it was shown.

A run under ``--permutations P`` stores one record per (instance, display order
``p``) (:mod:`flexbench.display`). From those *trials*:

* per-instance scores (:func:`merge_trials`): the mean of each metric over the
  instance's trials. The headline metric is their mean, and the significance
  tests pair instances on them;
* **order spread** = ``mean_x std_p NDCG@5(x, p)`` (population std over the
  ``P`` display orders of instance ``x``; ``None`` for ``P = 1``, not measured).
  Exactly 0 for a ranker that never looks at the display order;
* **first-slot share** = ``#{trials whose top-ranked item is the first one shown} / #trials``
  (chance ``1 / K``);
* **Kendall tau** (tau-a) between the output ranking and the display order, averaged
  over trials: ``(C - D) / (K (K - 1) / 2)`` with ``C`` (``D``) the candidate pairs
  that the output puts in the same (opposite) order as the display. About 0 for an
  order-blind ranker, 1 for one that returns the display order unchanged
  (Kendall 1938, Biometrika 30(1/2):81-93).

The output ranking is the repaired list (the one scored), a permutation of the
candidates. Records made before display orders were stored carry no
``display_ids``: they were shown display order 0 of the run's seed, which is
recomputed here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from flexbench.display import order_of
from flexbench.types import InstanceRecord

SPREAD_METRIC = "ndcg@5"


def merge_trials(trials: Iterable[InstanceRecord]) -> list[InstanceRecord]:
    """One record per instance, in order of first appearance: a lone trial unchanged; several merged
    into the lowest permutation's record with every metric averaged over the trials."""
    groups: dict[str, list[InstanceRecord]] = {}
    for record in trials:
        groups.setdefault(record.instance_id, []).append(record)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        first = min(group, key=lambda r: r.permutation)
        means = {m: float(np.mean([r.metrics[m] for r in group])) for m in first.metrics}
        out.append(dataclasses.replace(first, metrics=means))
    return out


def kendall_tau(output: Sequence[str], reference: Sequence[str]) -> float:
    """Kendall's tau-a between two orderings of the same items (module docstring); 0 for fewer than 2."""
    n = len(reference)
    if n < 2:
        return 0.0
    position = {item: i for i, item in enumerate(output)}
    ranks = np.array([position[item] for item in reference], dtype=np.int64)
    signs = np.sign(ranks[None, :] - ranks[:, None])
    return float(np.triu(signs, k=1).sum() / (n * (n - 1) / 2))


def shown_of(record: InstanceRecord, seed: int) -> tuple[str, ...]:
    """The display order ``record``'s ranker was shown (recomputed for records that do not store it)."""
    return record.display_ids or order_of(record.repaired_ids, record.instance_id, seed, record.permutation)


@dataclass(frozen=True, slots=True)
class OrderStats:
    """Order-robustness columns of one run (module docstring); ``chance`` is the mean ``1 / K``."""

    permutations: int
    spread: float | None
    first_slot_share: float
    kendall_tau: float
    chance: float


def order_stats(trials: Sequence[InstanceRecord], seed: int) -> OrderStats | None:
    """The :class:`OrderStats` of a run's trials (None without trials)."""
    scored = [r for r in trials if r.repaired_ids]
    if not scored:
        return None
    shown = [shown_of(r, seed) for r in scored]
    first = np.mean([r.repaired_ids[0] == s[0] for r, s in zip(scored, shown, strict=True)])
    tau = np.mean([kendall_tau(r.repaired_ids, s) for r, s in zip(scored, shown, strict=True)])
    by_instance: dict[str, list[float]] = {}
    for r in scored:
        by_instance.setdefault(r.instance_id, []).append(r.metrics[SPREAD_METRIC])
    permutations = max(len(v) for v in by_instance.values())
    stds = [float(np.std(v)) if max(v) > min(v) else 0.0 for v in by_instance.values()]  # exact 0 when equal
    spread = float(np.mean(stds)) if permutations > 1 else None
    return OrderStats(permutations=permutations, spread=spread, first_slot_share=float(first),
                      kendall_tau=float(tau), chance=float(np.mean([1 / len(r.repaired_ids) for r in scored])))
