"""Instance construction for sequential datasets (SPEC section 2; paper Appendix A).

* :func:`split_users`: seeded user-level 80/10/10 train/valid/test split.
* :func:`sparsify`: seeded uniform per-user subsample (KuaiRec: 10% of each
  user's interactions, ``max(1, round(0.1 * n_u))``), the observable view.
* :func:`anchor_windows`: an instance is anchored at one of a user's
  observable interactions; its history is the ``L`` most recent interactions
  before it (at least ``min_history``), its query time is the anchor's time.
* :func:`subsample`: seeded choice of at most ``n`` anchors per split.
* :func:`storage_order`: the seeded order in which an instance's candidates are
  stored, ``sha256(seed, instance_id, item_id)``: it carries no label and no
  retrieval signal, so the ``candidate-order`` ranker is a canary at random level.

:data:`PROTOCOL_VERSION` names the instance and label protocol (docs/PROTOCOL.md);
it is recorded in every prepared dataset's meta and folded into its fingerprint,
so results made under different protocols never mix. History: 1 -- candidates
stored in retriever order, ML-1M fillers top-retrieved, paper labels only; 2 --
seeded hash order, retriever score and 24 h counts stored per candidate,
popularity-matched ML-1M fillers, ``novelty-v2`` and ``trend-v2`` labels.

Everything takes an explicit seed and works on numpy arrays (no row loops),
so the full-size KuaiRec matrices are handled in seconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flexbench.types import Split

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
PROTOCOL_VERSION = 2


@dataclass(frozen=True, kw_only=True)
class InstanceSizes:
    """Sizes of an instance set (SPEC section 2): the one place their defaults are written.

    ``n_train``/``n_valid``/``n_test`` instances per split (seeded subsample),
    ``k`` candidates, histories of ``history_len`` items (at least ``min_history``).
    ``flexbench data prepare``'s config and the builders' config both extend it.
    """

    n_train: int = 5000
    n_valid: int = 1000
    n_test: int = 1000
    k: int = 30
    history_len: int = 10
    min_history: int = 3
    seed: int = 0

    def sizes(self) -> dict[str, int]:
        """These fields as keyword arguments (to build another :class:`InstanceSizes` subclass)."""
        return {name: getattr(self, name) for name in InstanceSizes.__dataclass_fields__}


def rng_for(seed: int, *tags: int) -> np.random.Generator:
    """A generator seeded by ``(seed, *tags)``: independent streams per step."""
    return np.random.default_rng([seed, *tags])


def split_users(users: np.ndarray, seed: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> np.ndarray:
    """Split label (``"train"|"valid"|"test"``) of each distinct user in ``users`` (sorted order).

    Users are shuffled with the seed; the first 80% are train, the next 10%
    valid, the rest test.
    """
    if abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    uniq = np.unique(users)
    order = rng_for(seed, 11).permutation(len(uniq))
    n_train = round(fractions[0] * len(uniq))
    n_valid = round(fractions[1] * len(uniq))
    labels = np.empty(len(uniq), dtype=object)
    labels[order[:n_train]] = Split.TRAIN.value
    labels[order[n_train:n_train + n_valid]] = Split.VALID.value
    labels[order[n_train + n_valid:]] = Split.TEST.value
    return labels


def sparsify(users: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask keeping ``max(1, round(fraction * n_u))`` uniformly chosen rows of each user."""
    if not 0 < fraction <= 1:
        raise ValueError(f"sparsity fraction must lie in (0, 1], got {fraction}")
    users = np.asarray(users)
    key = rng_for(seed, 12).random(len(users))
    order = np.lexsort((key, users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, sizes)
    quota = np.maximum(1, np.rint(fraction * sizes)).astype(np.int64)
    mask = np.zeros(len(users), dtype=bool)
    mask[order] = rank < np.repeat(quota, sizes)
    return mask


@dataclass(frozen=True)
class Windows:
    """Anchors of a time-sorted log and their history windows.

    ``anchor[i]`` is a row of the log; ``history[i]`` holds the ``L`` preceding
    rows of the same user (left-padded with -1), most recent last.
    """

    anchor: np.ndarray
    history: np.ndarray


def anchor_windows(users: np.ndarray, history_len: int, min_history: int) -> Windows:
    """All anchors with at least ``min_history`` earlier rows of the same user.

    ``users`` must be grouped by user with each user's rows in time order.
    """
    if not 1 <= min_history <= history_len:
        raise ValueError(f"need 1 <= min_history ({min_history}) <= history_len ({history_len})")
    users = np.asarray(users)
    if len(users) and _n_runs(users) != len(np.unique(users)):
        raise ValueError("rows must be grouped by user")
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], int)
    first = np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    position = np.arange(len(users)) - first
    anchor = np.flatnonzero(position >= min_history)
    idx = anchor[:, None] - history_len + np.arange(history_len)[None, :]
    history = np.where(idx >= first[anchor][:, None], idx, -1)
    return Windows(anchor, history)


def _n_runs(users: np.ndarray) -> int:
    return int(1 + (users[1:] != users[:-1]).sum())


def subsample(split_of_anchor: np.ndarray, quotas: dict[str, int], seed: int) -> np.ndarray:
    """Indices of at most ``quotas[split]`` anchors per split, chosen uniformly (seeded), sorted."""
    rng = rng_for(seed, 13)
    chosen = []
    for split in (Split.TRAIN.value, Split.VALID.value, Split.TEST.value):
        pool = np.flatnonzero(split_of_anchor == split)
        n = min(len(pool), quotas.get(split, 0))
        chosen.append(np.sort(rng.choice(pool, n, replace=False)) if n else np.array([], dtype=np.int64))
    return np.concatenate(chosen).astype(np.int64)


def storage_key(seed: int, instance_id: str, item_id: str) -> str:
    """``sha256("candidate-order", seed, instance_id, item_id)`` as hex: the sort key of the stored order."""
    return hashlib.sha256(f"candidate-order\x1f{seed}\x1f{instance_id}\x1f{item_id}".encode()).hexdigest()


def storage_order(instance_ids: Sequence[str], item_ids: np.ndarray, seed: int) -> np.ndarray:
    """``[N, K]`` permutation of each row of ``item_ids`` by :func:`storage_key` (ties by item ID).

    The order depends only on ``(seed, instance_id, item_id)``: not on labels, retriever
    scores or the order the candidates were produced in.
    """
    out = np.empty(item_ids.shape, dtype=np.int64)
    for row, (iid, items) in enumerate(zip(instance_ids, item_ids, strict=True)):
        keys = [(storage_key(seed, iid, str(item)), str(item)) for item in items]
        out[row] = sorted(range(len(keys)), key=keys.__getitem__)
    return out


def permute_rows(matrix: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``matrix[n, order[n]]`` for every row ``n``."""
    return np.take_along_axis(np.asarray(matrix), order, axis=1)
