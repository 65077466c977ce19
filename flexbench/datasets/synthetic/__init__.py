"""Synthetic samples of each dataset in the official file layout (``flexbench data sample``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SCALES = ("small", "full")


def writer(dataset: str) -> Callable[..., Path]:
    """The sample writer of ``dataset`` (``kuairec``, ``ml-1m`` or ``esci``)."""
    from flexbench.datasets.synthetic import esci, kuairec, movielens

    return {"kuairec": kuairec.write_kuairec, "ml-1m": movielens.write_movielens,
            "esci": esci.write_esci}[dataset]
