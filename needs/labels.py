"""Shared helpers of the need label constructors: row-wise min-max and NeedLabels assembly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.types import NeedLabels
from needs.base import relevant_set


def minmax_rows(x: np.ndarray) -> np.ndarray:
    """Min-max normalise each row of ``x`` to [0, 1]; a constant row maps to zeros (as :func:`needs.base.minmax`)."""
    x = np.asarray(x, dtype=np.float64)
    lo = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - lo
    return np.divide(x - lo, span, out=np.zeros_like(x), where=span > 0)


def to_labels(need: str, instance_ids: Sequence[str], candidate_ids: Sequence[Sequence[str]],
              gains: np.ndarray, relevant: Sequence[frozenset[str]] | None = None) -> list[NeedLabels]:
    """One :class:`NeedLabels` per instance; ``relevant`` defaults to :func:`needs.base.relevant_set`."""
    out = []
    for i, (iid, cands) in enumerate(zip(instance_ids, candidate_ids, strict=True)):
        row = [float(g) for g in gains[i, :len(cands)]]
        rel = relevant[i] if relevant is not None else relevant_set(tuple(cands), row)
        out.append(NeedLabels(iid, need, tuple(cands), tuple(row), rel))
    return out
