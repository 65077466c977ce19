"""The numbers the paper reports, shipped as ``paper_numbers.csv`` beside the layouts.

Columns: ``table, dataset, need, train_need, row, metric, value``; ``row`` is the
ranker label of :mod:`flexbench.tables.layout` (``gain-vs-zero-shot`` holds the
paper's percentage gain row). Cells the paper leaves empty or marks "—" are absent.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class PaperNumbers:
    """Lookup of reported values by ``(table, dataset, need, row, metric)``."""

    values: dict[tuple[str, str, str, str, str], float]

    def get(self, table: str, dataset: str, need: str, row: str, metric: str) -> float | None:
        """The paper's value of a cell, or None where the paper reports none."""
        return self.values.get((table, dataset, need, row, metric))

    def __len__(self) -> int:
        return len(self.values)


def parse_paper_numbers(text: str) -> PaperNumbers:
    """Parse the CSV text; raises ValueError on a malformed or duplicated row."""
    values: dict[tuple[str, str, str, str, str], float] = {}
    for line, rec in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        key = (rec["table"], rec["dataset"], rec["need"], rec["row"], rec["metric"])
        if key in values:
            raise ValueError(f"paper_numbers.csv line {line}: duplicate cell {key}")
        values[key] = float(rec["value"])
    return PaperNumbers(values)


def load_paper_numbers() -> PaperNumbers:
    """Load the shipped ``paper_numbers.csv``."""
    text = resources.files("flexbench.tables").joinpath("paper_numbers.csv").read_text(encoding="utf-8")
    return parse_paper_numbers(text)
