"""Paired significance test on per-instance metrics (two-sided paired t-test).

For per-instance scores ``a_i`` and ``b_i`` of two runs on the same instances,
``d_i = a_i - b_i``, ``t = mean(d) / (std(d, ddof=1) / sqrt(n))`` with ``n - 1``
degrees of freedom (Student 1908; the test ranx ``compare`` calls "Student's
paired t-test", Bassani 2022). Deterministic, so rendered tables are reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from flexbench.types import InstanceRecord

ALPHA = 0.05
BETTER, WORSE = "▲", "▼"


@dataclass(frozen=True, slots=True)
class PairedTest:
    """Outcome of a paired test of ``a`` against ``b`` on one metric."""

    n: int
    mean_diff: float
    p_value: float | None  # None: fewer than 2 pairs or zero variance of the differences

    def mark(self, alpha: float = ALPHA) -> str:
        """``▲`` when ``a`` is significantly better, ``▼`` when worse, else empty."""
        if self.p_value is None or self.p_value >= alpha:
            return ""
        return BETTER if self.mean_diff > 0 else WORSE


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Two-sided paired t-test of ``a`` vs ``b`` (same length, same instance order)."""
    if len(a) != len(b):
        raise ValueError(f"paired test needs equal lengths, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.size < 2 or float(np.std(d)) == 0.0:
        return PairedTest(int(d.size), float(d.mean()) if d.size else 0.0, None)
    p = float(stats.ttest_rel(np.asarray(a, dtype=float), np.asarray(b, dtype=float)).pvalue)
    return PairedTest(int(d.size), float(d.mean()), p)


def compare_records(a: Sequence[InstanceRecord], b: Sequence[InstanceRecord], metric: str) -> PairedTest | None:
    """Paired test of two runs' per-instance ``metric``; None unless both cover the same instances."""
    sa, sb = _scores(a, metric), _scores(b, metric)
    if not sa or sa.keys() != sb.keys():
        return None
    ids = sorted(sa)
    return paired_ttest([sa[i] for i in ids], [sb[i] for i in ids])


def _scores(records: Sequence[InstanceRecord], metric: str) -> Mapping[str, float]:
    return {r.instance_id: float(r.metrics[metric]) for r in records if metric in r.metrics}
