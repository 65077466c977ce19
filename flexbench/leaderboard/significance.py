"""Paired significance tests and confidence intervals over per-instance scores.

Significance vs the best run (paired, per metric, over the instance IDs both
runs scored): a value is marked significantly worse than the best when the
two-sided p-value is below ``alpha`` under *both* the paired t-test
(``scipy.stats.ttest_rel``) and the Fisher randomization test with seeded
random sign flips of the per-instance differences (Fisher 1935; Smucker, Allan
& Carterette, CIKM 2007, doi:10.1145/1321440.1321528). No correction for
multiple comparisons is applied.

Confidence interval of a run's mean (the charts' whiskers): the Student
t-interval over the ``n`` per-instance scores ``x_i``::

    mean ± t_{1 - (1 - level) / 2, n - 1} · s / sqrt(n),    s² = Σ (x_i - mean)² / (n - 1)

(None for ``n < 2``). It is exact for normal scores and a close approximation
for the bounded, roughly symmetric NDCG means of 100+ instances; with a handful
of instances (an LLM row limited to n = 2) it is honestly wide.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

ALPHA = 0.05
CI_LEVEL = 0.95


def paired_pvalues(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    """Two-sided ``(t-test p, Fisher randomization p)`` for paired samples ``a`` and ``b``.

    Randomization: ``p = (1 + #{s : |mean(s * d)| >= |mean(d)|}) / (1 + n_resamples)``
    with ``d = a - b`` and ``s`` uniform random signs (seeded).
    """
    from scipy.stats import ttest_rel

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2 or np.allclose(d, 0.0):
        return 1.0, 1.0
    with warnings.catch_warnings():  # nearly identical samples: scipy warns, the p-value is still defined
        warnings.simplefilter("ignore", RuntimeWarning)
        t_p = float(ttest_rel(a, b).pvalue)
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(n_resamples, len(d)))
    observed = abs(d.mean())
    extreme = int((np.abs(signs @ d) / len(d) >= observed - 1e-12).sum())
    return (1.0 if np.isnan(t_p) else t_p), (1 + extreme) / (1 + n_resamples)


def worse_than(best: Mapping[str, Mapping[str, float]], other: Mapping[str, Mapping[str, float]], metric: str,
               *, alpha: float = ALPHA, n_resamples: int = 1000, seed: int = 0) -> bool:
    """Whether ``other`` is significantly worse than ``best`` on ``metric`` (module docstring).

    Both arguments map instance ID -> metrics; only the shared IDs are compared.
    """
    shared = sorted(set(best) & set(other))
    if not shared:
        return False
    a = np.array([best[i][metric] for i in shared])
    b = np.array([other[i][metric] for i in shared])
    t_p, fisher_p = paired_pvalues(a, b, n_resamples=n_resamples, seed=seed)
    return bool(a.mean() > b.mean() and t_p < alpha and fisher_p < alpha)


def t_interval(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float] | None:
    """The Student t-interval of the mean of ``values`` at ``level`` (module docstring); None for n < 2."""
    from scipy.stats import t

    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return None
    half = float(t.ppf(1 - (1 - level) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    mean = float(x.mean())
    return mean - half, mean + half
