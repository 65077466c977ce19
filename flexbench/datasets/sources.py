"""Raw files -> the inputs of instance construction, per dataset (vectorised, explicit dtypes).

* KuaiRec: catalogue = small-matrix videos; labels = dense small-matrix
  watch ratios; observable log = a seeded 10% per-user sample of the
  small-matrix rows that have a timestamp (rows with empty time fields cannot
  be placed in a history; they still count as labels); traffic for the trend
  need = every big-matrix interaction with a catalogue video; organic log =
  the big-matrix rows (all videos) of users outside the validation and test
  splits (KuaiRec's own protocol: train on the big matrix, evaluate on the
  small one; the big matrix leaves out every small-matrix cell).
* ML-1M: catalogue = ``movies.dat``; log and labels = all ratings, each user's
  ratings in time order (file order among equal timestamps); traffic = all ratings.
* ESCI: the joined reduced US set; catalogue = its judged products.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.datasets import esci, kuairec, movielens
from flexbench.datasets.sequential import CandidateRule, LabelKind, SequentialSource, topic_matrix
from flexbench.errors import FlexBenchError
from flexbench.instances import sparsify, split_users
from needs.trend import TrafficIndex


@dataclass(frozen=True)
class Loaded:
    """A loaded dataset: the catalogue and either a sequential source or the joined ESCI table.

    ``dense``: KuaiRec's whole small matrix (the ``dense`` variant's interactions);
    ``organic``: KuaiRec's organic log (:func:`organic_log`); ``repairs``: one line
    per counted repair of the raw files (printed by prepare, kept in ``meta.json``).
    """

    items: pd.DataFrame
    source: SequentialSource | None = None
    joined: pd.DataFrame | None = None
    dense: pd.DataFrame | None = None
    organic: pd.DataFrame | None = None
    repairs: tuple[str, ...] = ()


def load(dataset: str, root: Path, sparsity: float, seed: int) -> Loaded:
    """Load ``dataset`` from ``root``."""
    if dataset == "kuairec":
        return load_kuairec_source(root, sparsity, seed)
    if dataset == "ml-1m":
        return load_movielens_source(root)
    repairs: list[str] = []
    joined = esci.load_esci(root, repairs=repairs)
    products = joined.drop_duplicates("product_id").sort_values("product_id", kind="stable")
    items = pd.DataFrame({"item_id": products["product_id"].astype(str).to_numpy(),
                          "text": [esci.item_text(r) for _, r in products.iterrows()],
                          "topics": [[] for _ in range(len(products))]})
    return Loaded(items=items, joined=joined, repairs=tuple(repairs))


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(values, return_inverse=True)
    return uniq, codes.astype(np.int64)


def load_kuairec_source(root: Path, sparsity: float, seed: int) -> Loaded:
    """KuaiRec with the sparse view drawn by :func:`flexbench.instances.sparsify`."""
    folder = kuairec.data_dir(root)
    columns = ["user_id", "video_id", "timestamp", "watch_ratio"]
    small, repair = kuairec.dedupe_small_matrix(folder / "small_matrix.csv",
                                                kuairec.load_matrix(folder / "small_matrix.csv", columns))
    big = kuairec.load_matrix(folder / "big_matrix.csv", columns)
    raw = kuairec.KuaiRecRaw(small=small, big=None,
                             categories=kuairec.load_item_categories(folder / "item_categories.csv"),
                             captions=kuairec.load_captions(folder / "kuairec_caption_category.csv"))
    user_ids, ucode = _codes(small["user_id"].to_numpy())
    videos, icode = _codes(small["video_id"].to_numpy())
    kuairec.check_catalogue(folder, raw, videos)
    wr = small["watch_ratio"].to_numpy(dtype=np.float64)
    dense = np.full((len(user_ids), len(videos)), np.nan, dtype=np.float32)
    dense[ucode, icode] = wr
    ts = small["timestamp"].to_numpy(dtype=np.float64)
    timed = np.flatnonzero(np.isfinite(ts))
    keep = timed[sparsify(ucode[timed], sparsity, seed)]
    keep = keep[np.lexsort((keep, ts[keep], ucode[keep]))]
    log = pd.DataFrame({"user": ucode[keep], "item": icode[keep], "value": wr[keep],
                        "timestamp": np.floor(ts[keep]).astype(np.int64)})
    lookup = np.full(int(max(videos.max(), big["video_id"].max())) + 1, -1, dtype=np.int64)
    lookup[videos] = np.arange(len(videos))
    big_item = lookup[big["video_id"].to_numpy()]
    big_ts = big["timestamp"].to_numpy(dtype=np.float64)
    ok = (big_item >= 0) & np.isfinite(big_ts)
    if not ok.any():
        raise FlexBenchError(f"{folder / 'big_matrix.csv'}: none of its {len(big)} rows is a timed play of a "
                             f"small_matrix.csv video (no trend traffic); the files are from different releases")
    items = kuairec.item_table(raw, videos)
    source = SequentialSource("kuairec", user_ids, items, log, dense, LabelKind.WATCH_RATIO,
                              topic_matrix(list(items["topics"])),
                              TrafficIndex(big_item[ok], np.floor(big_ts[ok]).astype(np.int64)), CandidateRule.RETRIEVE)
    dense_rows = pd.DataFrame({"user": ucode, "item": icode, "value": wr,
                               "timestamp": pd.array(np.where(np.isfinite(ts), np.floor(np.nan_to_num(ts)), np.nan),
                                                     dtype="Float64").astype("Int64")})
    return Loaded(items=items, source=source, dense=dense_rows, organic=organic_log(big, user_ids, seed),
                  repairs=(repair,) if repair else ())


def load_movielens_source(root: Path) -> Loaded:
    """ML-1M ratings as log, labels and traffic."""
    raw = movielens.load_movielens(root, users=False)
    items = movielens.item_table(raw.movies)
    r = raw.ratings
    user_ids, ucode = _codes(r["user_id"].to_numpy())
    lookup = np.full(int(raw.movies["movie_id"].max()) + 1, -1, dtype=np.int64)
    lookup[raw.movies["movie_id"].to_numpy()] = np.arange(len(raw.movies))
    icode = lookup[r["movie_id"].to_numpy()]
    ts = r["timestamp"].to_numpy()
    order = np.lexsort((np.arange(len(r)), ts, ucode))
    log = pd.DataFrame({"user": ucode[order], "item": icode[order],
                        "value": r["rating"].to_numpy(dtype=np.float64)[order], "timestamp": ts[order]})
    labels = np.full((len(user_ids), len(items)), np.nan, dtype=np.float32)
    labels[ucode, icode] = r["rating"].to_numpy(dtype=np.float32)
    source = SequentialSource("ml-1m", user_ids, items, log, labels, LabelKind.RATING,
                              topic_matrix(list(items["topics"])), TrafficIndex(icode, ts), CandidateRule.FUTURE_RATED)
    return Loaded(items=items, source=source, repairs=raw.repairs)


def interactions(loaded: Loaded, variant: str, seed: int) -> pd.DataFrame:
    """The observable view of every user with the user's split (``interactions.parquet``)."""
    src = loaded.source
    assert src is not None
    rows = loaded.dense if variant == "dense" else src.log
    split = split_users(np.arange(len(src.user_ids)), seed)
    users = rows["user"].to_numpy()
    return pd.DataFrame({
        "user_id": src.user_ids[users].astype(str),
        "item_id": src.items["item_id"].to_numpy()[rows["item"].to_numpy()],
        "value": rows["value"].to_numpy(dtype=np.float64),
        "timestamp": pd.array(rows["timestamp"], dtype="Int64"),
        "split": split[users].astype(str),
    })


def organic_log(big: pd.DataFrame, small_users: np.ndarray, seed: int) -> pd.DataFrame:
    """KuaiRec's big matrix without the validation and test users of the small matrix (``organic.parquet``).

    ``small_users`` are the small matrix's sorted user IDs, split as in
    :func:`interactions`. Rows are grouped by user and time-ordered (file order
    among equal times; the official file is already in that order, then no sort
    runs); ``user_id``/``item_id`` are categorical strings, ``split`` is ``train``
    (big-matrix users outside the small matrix are never evaluated). Every step is
    O(rows) but the fallback sort: 12.5M rows take seconds.
    """
    split = split_users(np.arange(len(small_users)), seed)
    users = big["user_id"].to_numpy()
    ts = big["timestamp"].to_numpy(dtype=np.float64)
    pos = np.minimum(np.searchsorted(small_users, users), len(small_users) - 1)
    held_out = (small_users[pos] == users) & (split[pos] != "train")
    keep = np.flatnonzero(~held_out & np.isfinite(ts))
    u, t = users[keep], ts[keep]
    if not ((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (t[1:] >= t[:-1]))).all():
        keep = keep[np.lexsort((keep, t, u))]
    return pd.DataFrame({
        "user_id": _categorical(users[keep]),
        "item_id": _categorical(big["video_id"].to_numpy()[keep]),
        "value": big["watch_ratio"].to_numpy(dtype=np.float64)[keep],
        "timestamp": pd.array(np.floor(ts[keep]).astype(np.int64), dtype="Int64"),
        "split": pd.Categorical.from_codes(np.zeros(len(keep), dtype=np.int8), categories=["train"]),
    })


def _categorical(ids: np.ndarray) -> pd.Categorical:
    """Non-negative integer IDs as a categorical of their decimal strings, without sorting the rows."""
    present = np.flatnonzero(np.bincount(ids))
    lookup = np.zeros(int(present[-1]) + 1 if len(present) else 1, dtype=np.int32)
    lookup[present] = np.arange(len(present), dtype=np.int32)
    return pd.Categorical.from_codes(lookup[ids], categories=present.astype(str))
