"""Training examples of the critic: (user context, item) -> observed engagement.

For every observed interaction of a training user, the context is that user's
observed interactions before it (at most ``history_len``, the instance history
window L, most recent last) and the target is the observed value (KuaiRec watch
ratio, ML-1M rating). A user's first interaction has no context and is skipped.
Items are addressed by their row in the prepared dataset's item table (the row
of ``item_embeddings.npy``); history rows are padded with -1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset

PAD = -1


@dataclass(frozen=True)
class CriticExamples:
    """Aligned arrays of N examples: ``history``/``engagement`` ``[N, L]``, ``item``/``target`` ``[N]``."""

    history: np.ndarray
    engagement: np.ndarray
    item: np.ndarray
    target: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.item)
        if (
            self.history.shape != self.engagement.shape
            or self.history.shape[:1] != (n,)
            or len(self.target) != n
        ):
            raise ValueError(
                f"misaligned critic examples: history {self.history.shape}, engagement "
                f"{self.engagement.shape}, item {self.item.shape}, target {self.target.shape}"
            )

    def __len__(self) -> int:
        return len(self.item)

    def subset(self, index: np.ndarray) -> CriticExamples:
        """The examples at ``index``."""
        return CriticExamples(
            self.history[index], self.engagement[index], self.item[index], self.target[index]
        )


def examples_from_interactions(
    frame: pd.DataFrame, item_index: Mapping[str, int], history_len: int = 10
) -> CriticExamples:
    """Build examples from ``user_id, item_id, value, timestamp`` rows (order within a user by timestamp).

    Interactions with items outside ``item_index`` are dropped (neither context
    nor target). Rows with equal or missing timestamps keep their file order.
    """
    if history_len < 1:
        raise ValueError(f"history_len must be >= 1, got {history_len}")
    rows = frame.assign(_row=frame["item_id"].map(item_index), _order=np.arange(len(frame)))
    rows = rows.dropna(subset=["_row"]).sort_values(
        ["user_id", "timestamp", "_order"], kind="stable", na_position="last"
    )
    parts: list[tuple[np.ndarray, ...]] = []
    for _, user in rows.groupby("user_id", sort=False):
        items = user["_row"].to_numpy(np.int64)
        values = user["value"].to_numpy(np.float64)
        if len(items) < 2:
            continue
        hist = _windows(np.concatenate([np.full(history_len, PAD), items]), history_len)[1 : len(items)]
        eng = _windows(np.concatenate([np.zeros(history_len), values]), history_len)[1 : len(items)]
        parts.append((hist, eng, items[1:], values[1:]))
    if not parts:
        return CriticExamples(
            np.zeros((0, history_len), np.int64),
            np.zeros((0, history_len), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )
    hist, eng, item, target = (np.concatenate(p) for p in zip(*parts, strict=True))
    return CriticExamples(hist, eng.astype(np.float32), item, target.astype(np.float32))


def context_arrays(
    histories: Sequence[Sequence[tuple[str, float]]], item_index: Mapping[str, int], history_len: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``[(item_id, engagement), ...]`` histories (most recent last) to ``[N, L]`` row/engagement arrays.

    Keeps the last ``history_len`` items known to ``item_index``, right-aligned like
    :func:`examples_from_interactions`.
    """
    hist = np.full((len(histories), history_len), PAD, dtype=np.int64)
    eng = np.zeros((len(histories), history_len), dtype=np.float32)
    for n, history in enumerate(histories):
        known = [(item_index[i], e) for i, e in history if i in item_index][-history_len:]
        if known:
            hist[n, history_len - len(known) :] = [r for r, _ in known]
            eng[n, history_len - len(known) :] = [e for _, e in known]
    return hist, eng


def split_indices(
    n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random train/valid/test split of ``range(n)`` in the given proportions (8:1:1)."""
    order = np.random.default_rng(seed).permutation(n)
    total = sum(fractions)
    n_train = round(n * fractions[0] / total)
    n_valid = round(n * fractions[1] / total)
    return order[:n_train], order[n_train : n_train + n_valid], order[n_train + n_valid :]


def dataset_examples(
    dataset: PreparedDataset, history_len: int = 10
) -> tuple[list[str], np.ndarray, CriticExamples]:
    """``(item_ids, item_embeddings, examples)`` from the training users' observed interactions."""
    stored = dataset.item_embeddings()
    if stored is None:
        raise FlexBenchError(
            f"dataset {dataset.name!r} has no item_embeddings.npy; the critic needs the "
            f"retriever's item embeddings: run `flexbench data prepare {dataset.name}` again"
        )
    item_ids, matrix = stored
    frame = dataset.interactions("train")
    if frame.empty or frame["user_id"].isna().all():
        raise FlexBenchError(
            f"dataset {dataset.name!r} has no observed user interactions to train a critic on"
        )
    examples = examples_from_interactions(frame, {i: n for n, i in enumerate(item_ids)}, history_len)
    if len(examples) < 10:
        raise FlexBenchError(
            f"dataset {dataset.name!r} yields only {len(examples)} critic examples; "
            f"it needs users with at least two observed interactions"
        )
    return item_ids, np.asarray(matrix, dtype=np.float32), examples


def _windows(padded: np.ndarray, width: int) -> np.ndarray:
    """Row t holds ``padded[t : t + width]``: the ``width`` entries before unpadded position t."""
    return np.lib.stride_tricks.sliding_window_view(padded, width)
