"""Fixtures of the baseline tests: tiny hand-built prepared datasets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flexbench.prepared import PreparedDataset, instances_frame, labels_frame, write_prepared
from flexbench.types import Instance, NeedLabels

TinyFactory = Callable[..., PreparedDataset]


@pytest.fixture()
def tiny_dataset(tmp_path: Path) -> TinyFactory:
    """Write a prepared dataset from item embeddings, interactions (and an optional organic log) and instances
    (labels: zero gains)."""

    def make(embeddings: Mapping[str, Sequence[float]],
             interactions: Sequence[tuple[str, str, float, int, str]],
             instances: Sequence[Instance], name: str = "tiny",
             organic: Sequence[tuple[str, str, float, int, str]] | None = None,
             config: Mapping[str, object] | None = None) -> PreparedDataset:
        items = pd.DataFrame({"item_id": list(embeddings), "text": [f"item {i}" for i in embeddings],
                              "topics": [["t"] for _ in embeddings]})
        labels = [NeedLabels(x.instance_id, "interest", x.candidate_ids, (0.0,) * x.k, frozenset())
                  for x in instances]
        columns = ["user_id", "item_id", "value", "timestamp", "split"]
        inter = pd.DataFrame(list(interactions), columns=columns)
        return write_prepared(tmp_path / name, dataset=name, variant="sparse", needs=("interest",),
                              instances=instances_frame(instances), items=items, labels=labels_frame(labels),
                              interactions=inter, embeddings=np.array(list(embeddings.values()), dtype=np.float32),
                              organic=None if organic is None else pd.DataFrame(list(organic), columns=columns),
                              config=config)

    return make
