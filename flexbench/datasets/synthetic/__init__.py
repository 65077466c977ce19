"""Synthetic samples of each dataset in the official file layout (``flexbench data sample``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SCALES = ("small", "medium", "full")
#: Datasets with a ``medium`` scale (KuaiRec: >= 30 test users and >= 300 test instances per need, issue 24).
MEDIUM = ("kuairec",)


def writer(dataset: str) -> Callable[..., Path]:
    """The sample writer of ``dataset`` (``kuairec``, ``ml-1m`` or ``esci``)."""
    from flexbench.datasets.synthetic import esci, kuairec, movielens

    return {"kuairec": kuairec.write_kuairec, "ml-1m": movielens.write_movielens,
            "esci": esci.write_esci}[dataset]
