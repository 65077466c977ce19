"""Declarative layouts of the paper's tables and figures (FlexRec, arXiv 2603.11901).

Each :class:`TableLayout` repeats the paper's rows, row groups, column groups and
metric columns. A *cell* is ``(table, column group, row, metric)``; it maps to one
stored run (see :mod:`flexbench.results`)::

    RunKey(ranker=row.ranker, dataset=run_dataset(row, group), need=group.need, split="test")

and, for trained rows, the run's ``provenance["train_need"]`` must equal
:meth:`TableLayout.train_need_of` (the test need for Tables 1 and 3; ``interest``
for Tables 2, 6, 7, 8 and 9). A run trained on another need fills no cell.

Row label -> ranker label (what ``flexbench eval`` / the trainers must store):

=========================================  ==========================================
paper row                                  ranker label
=========================================  ==========================================
BERT4Rec                                   ``bert4rec``
STAR                                       ``star``
GPT-4o                                     ``gpt-4o``
Qwen2.5-3B-Instruct (zero-shot)            ``zero-shot``
+ TALLRec / + Rec-R1 / + Rank-GRPO         ``tallrec`` / ``rec-r1`` / ``rank-grpo``
+ FlexRec                                  ``flexrec``
Table 7 GRPO: independent, non-causal,     ``flexrec-independent-dense``,
CausalSwap                                 ``flexrec-noncausal-dense``, ``flexrec-dense``
Table 7 PPO: independent, non-causal,      ``flexrec-ppo-independent-dense``,
CausalSwap                                 ``flexrec-ppo-noncausal-dense``, ``flexrec-ppo-dense``
Table 8: User-KNN, Item-KNN, raw critic,   ``flexrec-userknn``, ``flexrec-itemknn``,
uncertainty-aware critic                   ``flexrec-rawcritic``, ``flexrec``
Table 9 (KuaiRec test set, policies        ``sft-dense``, ``ppo-dense``, ``rec-r1-dense``,
trained on KuaiRec-dense)                  ``rank-grpo-dense``, ``flexrec-dense``
=========================================  ==========================================

A :attr:`Row.dense` row reads the stored run of the group's dense variant
(``kuairec-dense``: :func:`run_dataset`): ``flexbench train flexrec-dense --dataset
kuairec-dense --need interest`` then ``flexbench eval flexrec-dense --dataset
kuairec-dense --need interest``. The dense variant's test instances and labels are
KuaiRec's own (only the training-time interactions are dense), so these rows sit
beside baselines evaluated on ``kuairec``, as in the paper's Table 9, whose baseline
numbers equal Table 1's.

Table 7 is the dense setting: its GRPO / CausalSwap row equals Table 9's dense
"GRPO (ours)" row exactly (0.607 / 0.636 / 0.790 / 0.336 / 0.851), so every Table 7
row is a ``*-dense`` method. Table 8 (sparse feedback: critic vs CF imputation)
matches no dense row and maps to ``kuairec`` / ``interest`` (its FlexRec N@5 0.595
is near Table 1's 0.597; R@5 is reported, which the paper uses for KuaiRec only).
The critic table's one row of numbers sits under the KuaiRec columns; the ML-1M
columns are empty in the paper.

Figure 2 (joint multi-need training, :class:`JointFigureLayout`) compares, per
dataset with several needs and per test need, the zero-shot base model, the
single-need policy (label ``flexrec``, trained on that need) and the joint policy
(label ``flexrec-joint``, provenance ``train_need == "all"``; see
:mod:`flexbench.tables.joint`).

The shipped ``paper_numbers.csv`` holds every number readable from the paper, keyed
by ``(table, dataset, need, row, metric)`` (``dataset`` is the test set's, ``kuairec``
for Tables 7 and 9); the ``gain-vs-zero-shot`` row holds percentages.
"""

from __future__ import annotations

from dataclasses import dataclass

METRIC_TITLES: dict[str, str] = {
    "ndcg@5": "N@5", "ndcg@10": "N@10", "ndcg@30": "N@30",
    "recall@5": "R@5", "precision@5": "P@5", "mrr@5": "MRR@5",
}
DATASET_TITLES: dict[str, str] = {
    "kuairec": "KuaiRec", "ml-1m": "MovieLens-1M", "esci": "ESCI", "kuairec-dense": "KuaiRec-dense",
}
PAPER_LLM = "Qwen2.5-3B-Instruct"
GAIN_ROW = "gain-vs-zero-shot"
GAIN_BASE, GAIN_TARGET = "zero-shot", "flexrec"

_REC = ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "mrr@5")
_ML1M_T1 = ("ndcg@5", "ndcg@10", "ndcg@30", "precision@5", "mrr@5")
_ESCI = ("ndcg@5", "ndcg@10", "ndcg@30", "precision@5", "recall@5")


@dataclass(frozen=True, slots=True)
class ColumnGroup:
    """A block of metric columns evaluated on one (dataset, test need)."""

    dataset: str
    need: str
    title: str
    metrics: tuple[str, ...]
    subtitle: str = ""

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_TITLES]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRIC_TITLES)}")


@dataclass(frozen=True, slots=True)
class Row:
    """One method row: the paper's label, the stored ranker label, and its role.

    ``trained`` rows must carry the table's train need in their provenance;
    ``ours`` rows get significance marks against the strongest non-``ours`` row
    of their scope. ``paper_model`` is the model the paper used (None when the
    method has no model to compare, e.g. BERT4Rec). ``dense`` rows read their runs
    from the group's dense variant (:func:`run_dataset`).
    """

    ranker: str
    label: str
    trained: bool = False
    ours: bool = False
    paper_model: str | None = PAPER_LLM
    dense: bool = False


@dataclass(frozen=True, slots=True)
class Section:
    """A titled group of rows (e.g. "Traditional Rerankers")."""

    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class TableLayout:
    """One paper table.

    ``train_need`` None means trained rows were trained on each column's test
    need. ``sig_scope`` is ``"table"`` (ours vs every other row) or ``"section"``
    (ours vs the other rows of its section, as in Table 7's GRPO/PPO blocks).
    """

    table_id: str
    title: str
    caption: str
    groups: tuple[ColumnGroup, ...]
    sections: tuple[Section, ...]
    train_need: str | None = None
    gain_row: bool = False
    sig_scope: str = "table"

    def __post_init__(self) -> None:
        if self.sig_scope not in ("table", "section"):
            raise ValueError(f"sig_scope must be 'table' or 'section', got {self.sig_scope!r}")
        rankers = [r.ranker for s in self.sections for r in s.rows]
        if self.sig_scope == "table" and len(set(rankers)) != len(rankers):
            raise ValueError(f"table {self.table_id}: duplicate rows {rankers}")
        if self.gain_row and not {GAIN_BASE, GAIN_TARGET} <= set(rankers):
            raise ValueError(f"table {self.table_id}: a gain row needs {GAIN_BASE!r} and {GAIN_TARGET!r}")

    @property
    def rows(self) -> tuple[Row, ...]:
        """Every row in display order."""
        return tuple(r for s in self.sections for r in s.rows)

    def train_need_of(self, row: Row, group: ColumnGroup) -> str | None:
        """The train need a stored run must record to fill ``row`` in ``group`` (None: not trained)."""
        if not row.trained:
            return None
        return self.train_need or group.need

    def comparison_pool(self, row: Row) -> tuple[Row, ...]:
        """Rows an ``ours`` row is tested against (the strongest of them is the reference)."""
        scope = next(s.rows for s in self.sections if row in s.rows) if self.sig_scope == "section" \
            else self.rows
        return tuple(r for r in scope if not r.ours)


@dataclass(frozen=True, slots=True)
class CriticLayout:
    """The critic quality table (paper Appendix G): metrics of ``<ckpt>/critic/<dataset>/report.json``."""

    datasets: tuple[str, ...] = ("kuairec", "ml-1m")
    metrics: tuple[str, ...] = ("mse", "mae", "pearson_mean", "pearson_var")
    titles: tuple[str, ...] = ("MSE", "MAE", "Pearson (Mean)", "Pearson (Var)")


@dataclass(frozen=True, slots=True)
class FigureLayout:
    """A validation-curve figure: one curve per run label, read from training metrics logs."""

    figure_id: str
    title: str
    need: str
    curves: tuple[tuple[str, str], ...]  # (run.json label, legend text)
    metrics: tuple[str, ...] = ("ndcg@5", "ndcg@10")


DENSE_SUFFIX = "-dense"


def run_dataset(row: Row, group: ColumnGroup) -> str:
    """The dataset of ``row``'s stored run in ``group``: the group's, or its dense variant for a
    :attr:`Row.dense` row (``kuairec`` -> ``kuairec-dense``)."""
    return f"{group.dataset}{DENSE_SUFFIX}" if row.dense else group.dataset


JOINT_TRAIN_NEED = "all"
"""``train_need`` a policy trained with ``--needs all`` records (:mod:`flexbench.train.run`)."""


@dataclass(frozen=True, slots=True)
class JointFigureLayout:
    """Figure 2: per dataset and test need, the base model, single-need policies and one joint policy.

    Bars come from stored test runs (:mod:`flexbench.tables.joint`): ``base``
    (no train need), ``method`` recording ``train_need`` = the test need, and
    :attr:`joint_label` recording ``train_need == "all"``.
    """

    figure_id: str
    title: str
    method: str
    datasets: tuple[str, ...]
    metrics: tuple[str, ...] = ("ndcg@5", "ndcg@10")
    base: str = GAIN_BASE

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_TITLES]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRIC_TITLES)}")

    @property
    def joint_label(self) -> str:
        """Ranker label of the joint policy's runs (``flexrec-joint``)."""
        return f"{self.method}-joint"


def _rows(*specs: tuple) -> tuple[Row, ...]:
    return tuple(Row(*spec) for spec in specs)


def _dense_rows(*specs: tuple[str, str, bool]) -> tuple[Row, ...]:
    """Trained rows of a ``*-dense`` method: ``(ranker, label, ours)``, run on the dense variant."""
    return tuple(Row(ranker, label, True, ours, dense=True) for ranker, label, ours in specs)


_CLASSIC = Section("Traditional Rerankers", _rows(
    ("bert4rec", "BERT4Rec (Sun et al., 2019)", False, False, None),
    ("star", "STAR (Lee et al., 2025)", False, False, "text-embedding-004"),
))
_ZERO_SHOT = Section("Zero-Shot LLMs", _rows(
    ("gpt-4o", "GPT-4o", False, False, "gpt-4o"),
    ("zero-shot", "Qwen2.5-3B-Instruct"),
))


def _post_trained(title: str) -> Section:
    return Section(title, _rows(
        ("tallrec", "Qwen2.5-3B-Instruct + TALLRec (Bao et al., 2023)", True),
        ("rec-r1", "Qwen2.5-3B-Instruct + Rec-R1 (Lin et al., 2025a)", True),
        ("rank-grpo", "Qwen2.5-3B-Instruct + Rank-GRPO (Zhu et al., 2025b)", True),
        ("flexrec", "Qwen2.5-3B-Instruct + FlexRec", True, True),
    ))


def _generalisation(table_id: str, need: str, need_title: str) -> TableLayout:
    sub = f"Train: Max-Interest, Test: {need_title}"
    return TableLayout(
        table_id, f"Table {table_id}: trained on Maximizing Interest, tested on {need_title}",
        f"Zero-shot generalisation to {need_title}: trained rows were trained on Maximizing Interest only.",
        (ColumnGroup("kuairec", need, "KuaiRec", _REC, sub), ColumnGroup("ml-1m", need, "MovieLens-1M", _REC, sub)),
        (_CLASSIC, _ZERO_SHOT, _post_trained("Post-Trained LLMs (trained on Max-Interest)")),
        train_need="interest", gain_row=True)


_KUAIREC_INTEREST = (ColumnGroup("kuairec", "interest", "KuaiRec", _REC, "Maximizing Interest"),)

TABLES: tuple[TableLayout, ...] = (
    TableLayout(
        "1", "Table 1: Maximizing Interest on KuaiRec and MovieLens-1M",
        "Single-need training and testing on Maximizing Interest (ML-1M reports P@5 instead of R@5).",
        (ColumnGroup("kuairec", "interest", "KuaiRec", _REC, "Maximizing Interest"),
         ColumnGroup("ml-1m", "interest", "MovieLens-1M", _ML1M_T1, "Maximizing Interest")),
        (_CLASSIC, _ZERO_SHOT, _post_trained("Post-Trained LLMs (Sparse)")), gain_row=True),
    _generalisation("2", "novelty", "Explore New Topics"),
    TableLayout(
        "3", "Table 3: Product Search on ESCI",
        "Query-driven ranking on ESCI; BERT4Rec does not apply (no user history).",
        (ColumnGroup("esci", "esci", "ESCI", _ESCI, "Product Search"),),
        (_CLASSIC, _ZERO_SHOT, _post_trained("Post-Trained LLMs")), gain_row=True),
    _generalisation("6", "trend", "Trend Promotion"),
    TableLayout(
        "7", "Table 7: item-level reward formulation under GRPO and PPO (dense KuaiRec)",
        "Reward ablation on KuaiRec, Maximizing Interest, policies trained on KuaiRec-dense (the paper's "
        "GRPO / CausalSwap row equals Table 9's dense GRPO row); marks compare CausalSwap with the other "
        "formulations of the same algorithm.",
        _KUAIREC_INTEREST,
        (Section("GRPO", _dense_rows(("flexrec-independent-dense", "Independent contribution", False),
                                     ("flexrec-noncausal-dense", "Swap-based contribution (non-causal)", False),
                                     ("flexrec-dense", "CausalSwap reward (ours)", True))),
         Section("PPO", _dense_rows(("flexrec-ppo-independent-dense", "Independent contribution", False),
                                    ("flexrec-ppo-noncausal-dense", "Swap-based contribution (non-causal)", False),
                                    ("flexrec-ppo-dense", "CausalSwap reward (ours)", True)))),
        train_need="interest", sig_scope="section"),
    TableLayout(
        "8", "Table 8: reward signal under sparse feedback",
        "Reward-signal ablation on KuaiRec, Maximizing Interest.",
        _KUAIREC_INTEREST,
        (Section("CF-based", _rows(("flexrec-userknn", "User-KNN CF", True),
                                   ("flexrec-itemknn", "Item-KNN CF", True))),
         Section("Critic-based", _rows(("flexrec-rawcritic", "Raw critic", True),
                                       ("flexrec", "FlexRec: Uncertainty-aware Critic", True, True)))),
        train_need="interest"),
    TableLayout(
        "9", "Table 9: dense setting of KuaiRec",
        "Policies trained with dense KuaiRec rewards (runs on kuairec-dense), tested on the KuaiRec Maximizing "
        "Interest test set; the baselines are the kuairec runs (the same test instances and labels).",
        _KUAIREC_INTEREST,
        (Section("Baselines", _rows(("bert4rec", "BERT4Rec", False, False, None),
                                    ("star", "STAR (retriever)", False, False, "text-embedding-004"),
                                    ("gpt-4o", "GPT-4o", False, False, "gpt-4o"),
                                    ("zero-shot", "Qwen2.5-3B"))),
         Section("Post-Trained LLMs (Dense)", _dense_rows(("sft-dense", "Qwen2.5-3B + SFT", False),
                                                          ("ppo-dense", "Qwen2.5-3B + PPO", False),
                                                          ("rec-r1-dense", "Qwen2.5-3B + Rec-R1", False),
                                                          ("rank-grpo-dense", "Qwen2.5-3B + Rank-GRPO", False),
                                                          ("flexrec-dense", "Qwen2.5-3B + GRPO (ours: FlexRec)", True)))),
        train_need="interest"),
)

CRITIC = CriticLayout()

FIGURES: tuple[FigureLayout, ...] = (
    FigureLayout("3", "Figure 3: validation NDCG under different reward designs", "interest",
                 (("rec-r1", "Sequence-level (Rec-R1)"), ("flexrec-noncausal", "Swap (non-causal)"),
                  ("flexrec", "CausalSwap (FlexRec)"))),
    FigureLayout("4", "Figure 4: validation NDCG under different reward signals", "interest",
                 (("flexrec-userknn", "User-KNN CF"), ("flexrec-itemknn", "Item-KNN CF"),
                  ("flexrec-rawcritic", "Raw critic"), ("flexrec", "Uncertainty-aware critic (FlexRec)"))),
)


JOINT = JointFigureLayout("2", "Figure 2: one FlexRec policy for every need (joint training) vs single-need "
                          "policies", "flexrec", ("kuairec", "ml-1m"))


def table_by_id(table_id: str) -> TableLayout:
    """The layout of paper table ``table_id`` ("1", "2", "3", "6", "7", "8", "9")."""
    for table in TABLES:
        if table.table_id == table_id:
            return table
    raise KeyError(f"no table {table_id!r}; known: {[t.table_id for t in TABLES]}")
