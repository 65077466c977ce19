"""``paper_numbers.csv`` against the paper text: every number is the paper's, in the paper's order.

The paper text is ``../shared/paper/flexrec-paper.txt`` beside the clone (CI checks it out there).
Each row of a table (one method in one column group) must appear in the text as a contiguous run of
numbers in the layout's metric order, so a transposed, shifted or misattributed value fails, not only
a number the paper never printed. Gains are compared as printed (``+59.2%`` is ``59.2``).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path

import pytest

from flexbench.tables.layout import CRITIC, TABLES

PAPER_TEXT = Path(__file__).resolve().parents[2].parent / "shared" / "paper" / "flexrec-paper.txt"
NUMBER = re.compile(r"[+-]?\d+\.\d+")


def _paper_numbers() -> list[str]:
    if not PAPER_TEXT.is_file():
        pytest.fail(f"the paper text {PAPER_TEXT} is missing: check out the shared/ folder beside the clone "
                    "(CI does); this test compares paper_numbers.csv with it", pytrace=False)
    return [n.lstrip("+") for n in NUMBER.findall(PAPER_TEXT.read_text(encoding="utf-8"))]


def _csv_rows() -> list[dict[str, str]]:
    text = resources.files("flexbench.tables").joinpath("paper_numbers.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _metric_order() -> dict[tuple[str, str, str], tuple[str, ...]]:
    order = {(t.table_id, g.dataset, g.need): g.metrics for t in TABLES for g in t.groups}
    order |= {("critic", d, ""): CRITIC.metrics for d in CRITIC.datasets}
    return order


def _groups() -> dict[tuple[str, str, str, str], list[str]]:
    """Each (table, dataset, need, row)'s values as written in the CSV, in the layout's metric order."""
    order = _metric_order()
    cells: dict[tuple[str, str, str, str], dict[str, str]] = defaultdict(dict)
    for rec in _csv_rows():
        cells[rec["table"], rec["dataset"], rec["need"], rec["row"]][rec["metric"]] = rec["value"]
    return {key: [values[m] for m in order[key[:3]] if m in values] for key, values in cells.items()}


def _contains_run(haystack: list[str], run: list[str]) -> bool:
    return any(haystack[i:i + len(run)] == run for i in range(len(haystack) - len(run) + 1))


def test_every_number_appears_in_the_paper_text() -> None:
    printed = set(_paper_numbers())
    absent = [(r["table"], r["dataset"], r["row"], r["metric"], r["value"]) for r in _csv_rows()
              if r["value"].lstrip("+") not in printed]
    assert not absent, f"numbers in paper_numbers.csv that {PAPER_TEXT.name} never prints: {absent}"


def test_each_row_is_a_contiguous_run_of_the_paper_text() -> None:
    numbers = _paper_numbers()
    groups = _groups()
    misplaced = [key for key, run in groups.items() if not _contains_run(numbers, [v.lstrip("+") for v in run])]
    assert not misplaced, f"rows whose values are not printed together, in metric order: {misplaced}"
    assert len(groups) >= 80


def test_table9_flexrec_row_is_transcribed_and_equals_table7() -> None:
    """The paper's Table 9 "GRPO (ours)" row is Table 7's GRPO / CausalSwap row: both are the dense run."""
    groups = _groups()
    row9 = groups["9", "kuairec", "interest", "flexrec-dense"]
    assert row9 == ["0.607", "0.636", "0.790", "0.336", "0.851"]
    assert groups["7", "kuairec", "interest", "flexrec-dense"] == row9
