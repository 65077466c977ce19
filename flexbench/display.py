"""The display order: the one place that decides in which order a ranker is shown an instance's candidates.

Under ``--permutations P`` every instance is ranked ``P`` times, under display
orders ``p = 0 .. P-1`` seeded by ``(seed, instance, p)``: candidate ``c`` of
instance ``x`` is sorted by the SHA-256 of ::

    p = 0:  "{seed}\\x1f{x.instance_id}\\x1f{c}"            (the order prompts always used: P = 1 unchanged)
    p > 0:  "{seed}\\x1f{x.instance_id}\\x1f{p}\\x1f{c}"

ties (never seen in practice) by item ID. The order is stable across Python and
NumPy versions, independent of the stored candidate order and of the retriever.

The harness hands the ranker :func:`present` ``(x, seed, p)``: the same instance
with :attr:`~flexbench.types.Instance.display_ids` set (the stored candidate
order and the labels are unchanged). LLM prompts show candidates in exactly
that order (:func:`shown_ids`, used by :mod:`flexbench.llm.prompts`); an outside
ranker that shows candidates to a model should do the same. Rankers that never
look at it (random, popularity, STAR, BERT4Rec, the oracles) give the same output
under every ``p``: order spread 0 and Kendall tau about 0 on the boards
(:mod:`flexbench.order_stats`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

from flexbench.types import Instance


def order_of(item_ids: Iterable[str], instance_id: str, seed: int, permutation: int = 0) -> tuple[str, ...]:
    """``item_ids`` in display order ``permutation`` of ``instance_id`` under ``seed`` (module docstring)."""
    if permutation < 0:
        raise ValueError(f"permutation must be >= 0, got {permutation}")
    head = f"{seed}\x1f{instance_id}\x1f" + (f"{permutation}\x1f" if permutation else "")

    def key(item: str) -> tuple[str, str]:
        return hashlib.sha256(f"{head}{item}".encode()).hexdigest(), item

    return tuple(sorted(item_ids, key=key))


def display_order(instance: Instance, seed: int, permutation: int = 0) -> tuple[str, ...]:
    """The candidate IDs of ``instance`` in display order ``permutation`` (module docstring)."""
    return order_of(instance.candidate_ids, instance.instance_id, seed, permutation)


def present(instance: Instance, seed: int, permutation: int = 0) -> Instance:
    """``instance`` as the ranker receives it under display order ``permutation``."""
    return dataclasses.replace(instance, display_ids=display_order(instance, seed, permutation))


def shown_ids(instance: Instance, seed: int) -> tuple[str, ...]:
    """The order in which to show ``instance``'s candidates: its ``display_ids`` when the harness set
    them, else display order 0 of ``seed`` (the default for callers outside the harness: training)."""
    return instance.display_ids or display_order(instance, seed, 0)
