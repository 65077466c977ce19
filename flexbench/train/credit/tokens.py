"""Map item- and sequence-level advantages onto the generated tokens (paper Section 3.2).

Tokens that spell an item of the ranked list get that item's advantage; every
other token (reasoning, separators, EOS) gets the rollout's sequence-level
advantage. Character spans are half-open ``[start, end)`` over the generated
text, the convention of Hugging Face ``return_offsets_mapping``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def token_item_index(
    token_offsets: Sequence[tuple[int, int]], item_spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Index of the item span each token overlaps, or -1 (``int64 [T]``).

    A token overlaps a span when they share at least one character
    (``min(end) - max(start) > 0``), so zero-width tokens (special tokens with
    offset ``(0, 0)``) belong to no item. A token that overlaps two spans (a
    merged separator such as ``"7,"`` followed by the next ID) goes to the span
    it shares most characters with, the earlier one on a tie.
    """
    tokens = _as_spans(token_offsets, "token_offsets")
    spans = _as_spans(item_spans, "item_spans")
    if len(tokens) == 0 or len(spans) == 0:
        return np.full(len(tokens), -1, dtype=np.int64)
    overlap = np.minimum(tokens[:, None, 1], spans[None, :, 1]) - np.maximum(
        tokens[:, None, 0], spans[None, :, 0]
    )
    best = overlap.argmax(axis=1)
    return np.where(overlap.max(axis=1) > 0, best, -1).astype(np.int64)


def token_advantages(
    token_offsets: Sequence[tuple[int, int]],
    item_spans: Sequence[tuple[int, int]],
    item_adv: Sequence[float],
    seq_adv: float,
) -> np.ndarray:
    """Per-token advantages ``[T]``: the overlapped item's advantage, else ``seq_adv``.

    ``item_adv[m]`` is the advantage of the entry whose characters are
    ``item_spans[m]`` (invalid and duplicate entries included, with the
    advantage :func:`flexbench.train.credit.grpo.item_advantages` gives them).
    """
    adv = np.asarray(item_adv, dtype=np.float64)
    if adv.shape != (len(item_spans),):
        raise ValueError(f"{adv.shape} item advantages for {len(item_spans)} item spans")
    index = token_item_index(token_offsets, item_spans)
    out = np.full(len(index), float(seq_adv), dtype=np.float64)
    hit = index >= 0
    out[hit] = adv[index[hit]]
    return out


def _as_spans(spans: Sequence[tuple[int, int]], name: str) -> np.ndarray:
    arr = np.asarray(spans, dtype=np.int64).reshape(-1, 2) if len(spans) else np.zeros((0, 2), np.int64)
    if np.any(arr[:, 1] < arr[:, 0]):
        raise ValueError(f"{name}: every span needs end >= start")
    return arr
