"""Published statistics of the real datasets that the synthetic samples must reproduce (issue 23).

This is the one table of real-data figures in the code. Each :class:`RealStat` names the
statistic, its value on the real dataset, the tolerance the sample must meet and where the
value comes from. :mod:`flexbench.fidelity` measures the same statistic on a sample's raw
files and prints both side by side (``flexbench data audit DATASET``); the tests pin the
tolerances (``tests/datasets/test_fidelity.py``).

Kinds of tolerance:

* ``abs``: ``|sample - real| <= tol`` (quartiles, shares in percentage points);
* ``range``: ``low <= sample <= high`` (counts whose scale differs between a 100-user
  sample and the 7,176-user release; ``real`` is then the published value for reference).

Sources:

* ``kuairec-stats``: KuaiRec's official statistics notebook (``Statistics_KuaiRec.ipynb``,
  ``small_matrix.csv``, rows with ``watch_ratio <= 5``: 4,653,780 of 4,676,570).
* ``kuairec-readme``: the KuaiRec 2.0 README and paper (Gao et al., CIKM 2022): 1,411 users x
  3,327 videos, 4,676,570 rows, density 99.6 %; ``item_categories.csv``: 31 tags, 1-4 per video.
  Mean tags per video 1.18 from the official ``item_categories.csv`` (10,728 videos).
* ``ml-1m-ratings``: the official ``ratings.dat`` of MovieLens-1M (Harper and Konstan, 2015),
  users 1-300, as measured in issue 23; per-user counts from the README (every user has at least
  20 ratings; 1,000,209 ratings / 6,040 users = 165.6 on average).
* ``esci-public``: the public Shopping Queries Dataset (Reddy et al., 2022), US locale, reduced
  set: the label shares of 150 judged queries measured in issue 23, about 44 judged products per
  query.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RealStat:
    """One published statistic, its tolerance and its source (module docstring)."""

    dataset: str
    name: str
    real: float
    kind: str          # "abs" or "range"
    tol: float = 0.0   # abs: allowed |sample - real|
    low: float = 0.0   # range: inclusive bounds
    high: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("abs", "range"):
            raise ValueError(f"kind must be 'abs' or 'range', got {self.kind!r}")
        if self.kind == "range" and self.low > self.high:
            raise ValueError(f"{self.name}: low {self.low} > high {self.high}")

    def passes(self, value: float) -> bool:
        """Whether the sample's ``value`` meets this statistic's tolerance."""
        if self.kind == "abs":
            return abs(value - self.real) <= self.tol + 1e-12
        return self.low <= value <= self.high

    @property
    def tolerance(self) -> str:
        """The tolerance in words (``±0.05``, ``[1.10, 1.26]``)."""
        if self.kind == "abs":
            return f"±{self.tol:g}"
        return f"[{self.low:g}, {self.high:g}]"


_KS, _KR, _ML, _ES = "kuairec-stats", "kuairec-readme", "ml-1m-ratings", "esci-public"

REAL_STATS: tuple[RealStat, ...] = (
    RealStat("kuairec", "watch ratio mean (<= 5)", 0.855, "abs", tol=0.05, source=_KS),
    RealStat("kuairec", "watch ratio 25 %", 0.466, "abs", tol=0.05, source=_KS),
    RealStat("kuairec", "watch ratio 50 %", 0.766, "abs", tol=0.05, source=_KS),
    RealStat("kuairec", "watch ratio 75 %", 1.114, "abs", tol=0.05, source=_KS),
    RealStat("kuairec", "small matrix density", 0.996, "abs", tol=0.002, source=_KR),
    RealStat("kuairec", "tags (distinct)", 31, "abs", tol=0, source=_KR),
    RealStat("kuairec", "tags per video: mean", 1.18, "abs", tol=0.05, source=_KR),
    RealStat("kuairec", "tags per video: min", 1, "abs", tol=0, source=_KR),
    RealStat("kuairec", "tags per video: max", 4, "range", low=2, high=4, source=_KR),
    RealStat("ml-1m", "rating share 1 (%)", 5.5, "abs", tol=3.0, source=_ML),
    RealStat("ml-1m", "rating share 2 (%)", 10.3, "abs", tol=3.0, source=_ML),
    RealStat("ml-1m", "rating share 3 (%)", 25.7, "abs", tol=3.0, source=_ML),
    RealStat("ml-1m", "rating share 4 (%)", 34.6, "abs", tol=3.0, source=_ML),
    RealStat("ml-1m", "rating share 5 (%)", 24.0, "abs", tol=3.0, source=_ML),
    RealStat("ml-1m", "ratings per user: min", 20, "range", low=20, high=30, source=_ML),
    RealStat("ml-1m", "ratings per user: mean", 165.6, "range", low=40, high=200, source=_ML),
    RealStat("esci", "label share E (%)", 50.7, "abs", tol=3.0, source=_ES),
    RealStat("esci", "label share S (%)", 28.4, "abs", tol=3.0, source=_ES),
    RealStat("esci", "label share C (%)", 4.6, "abs", tol=3.0, source=_ES),
    RealStat("esci", "label share I (%)", 16.3, "abs", tol=3.0, source=_ES),
    RealStat("esci", "judged products per query: mean", 44, "range", low=35, high=55, source=_ES),
)

#: Difficulty rules of issue 23 (items 2 and 3), checked on every sample by :mod:`flexbench.fidelity`.
REFERENCE_MARGIN = 0.2      # no reference ranker within this NDCG@5 of the need's oracle
SWITCH_CEILING = 0.85       # a need's oracle scores at most this NDCG@5 on every other need
STAR_ESCI_CEILING = 0.6     # STAR on ESCI (paper Table 3: 0.412)


def stats_of(dataset: str) -> tuple[RealStat, ...]:
    """The :data:`REAL_STATS` rows of ``dataset`` (``kuairec``, ``ml-1m``, ``esci``)."""
    return tuple(s for s in REAL_STATS if s.dataset == dataset)
