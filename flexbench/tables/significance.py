"""Significance of an ``ours`` cell against the strongest comparison row of its column.

Uses the leaderboard's paired test (:func:`flexbench.leaderboard.paired_pvalues`):
on the per-instance scores of the two runs, a two-sided Student paired t-test and
a Fisher randomization test with seeded sign flips (Smucker, Allan & Carterette,
CIKM 2007). A difference is marked only when *both* p-values are below
:data:`ALPHA`, and only when the two runs scored exactly the same instances.
Both tests are deterministic for the fixed seed, so rendered tables reproduce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from flexbench.types import InstanceRecord

ALPHA = 0.05
BETTER, WORSE = "▲", "▼"


@dataclass(frozen=True, slots=True)
class PairedTest:
    """Outcome of a paired test of run ``a`` against run ``b`` on one metric."""

    n: int
    mean_diff: float
    p_ttest: float
    p_fisher: float

    @property
    def p_value(self) -> float:
        """The larger of the two p-values (both must pass)."""
        return max(self.p_ttest, self.p_fisher)

    def mark(self, alpha: float = ALPHA) -> str:
        """``▲`` when ``a`` is significantly better, ``▼`` when worse, else empty."""
        if self.p_value >= alpha or self.mean_diff == 0:
            return ""
        return BETTER if self.mean_diff > 0 else WORSE


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired tests of ``a`` vs ``b`` (same length, same instance order)."""
    from flexbench.leaderboard import paired_pvalues

    if len(a) != len(b):
        raise ValueError(f"paired test needs equal lengths, got {len(a)} and {len(b)}")
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    t_p, fisher_p = paired_pvalues(xa, xb)
    return PairedTest(len(xa), float((xa - xb).mean()) if len(xa) else 0.0, t_p, fisher_p)


def compare_records(a: Sequence[InstanceRecord], b: Sequence[InstanceRecord], metric: str) -> PairedTest | None:
    """Paired test of two runs' per-instance ``metric``; None unless both cover the same instances."""
    sa, sb = _scores(a, metric), _scores(b, metric)
    if not sa or sa.keys() != sb.keys():
        return None
    ids = sorted(sa)
    return paired_test([sa[i] for i in ids], [sb[i] for i in ids])


def _scores(records: Sequence[InstanceRecord], metric: str) -> Mapping[str, float]:
    return {r.instance_id: float(r.metrics[metric]) for r in records if metric in r.metrics}
