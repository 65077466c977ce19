"""Shared helpers of the need label constructors: the relevant set, min-max, NeedLabels assembly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.types import NeedLabels


def minmax_rows(x: np.ndarray) -> np.ndarray:
    """Min-max normalise each row of ``x`` to [0, 1]; a constant row maps to zeros (as :func:`minmax`)."""
    x = np.asarray(x, dtype=np.float64)
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    return np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)


def to_labels(need: str, instance_ids: Sequence[str], candidate_ids: Sequence[Sequence[str]],
              gains: np.ndarray, relevant: Sequence[frozenset[str]] | None = None) -> list[NeedLabels]:
    """One :class:`NeedLabels` per instance; ``relevant`` defaults to :func:`relevant_set`."""
    out = []
    for i, (iid, cands) in enumerate(zip(instance_ids, candidate_ids, strict=True)):
        row = [float(g) for g in gains[i, :len(cands)]]
        rel = relevant[i] if relevant is not None else relevant_set(tuple(cands), row)
        out.append(NeedLabels(iid, need, tuple(cands), tuple(row), rel))
    return out


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
