"""KuaiRec's organic log: the big matrix minus the small matrix's validation and test users, time-ordered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexbench.datasets.sources import organic_log
from flexbench.instances import split_users


def test_organic_log_drops_held_out_users_and_orders_each_users_rows() -> None:
    small_users = np.arange(0, 40, dtype=np.int32) * 2          # even IDs are small-matrix users
    split = dict(zip(small_users.tolist(), split_users(np.arange(len(small_users)), 0), strict=True))
    held_out = {u for u, s in split.items() if s != "train"}
    rng = np.random.default_rng(0)
    n = 600
    big = pd.DataFrame({"user_id": rng.integers(0, 80, n).astype(np.int32),
                        "video_id": rng.integers(100, 130, n).astype(np.int32),
                        "timestamp": rng.integers(0, 50, n).astype(np.float64),
                        "watch_ratio": rng.random(n)})
    big.loc[3, "timestamp"] = np.nan                            # no time: cannot be placed in a sequence
    out = organic_log(big, small_users, 0)
    kept = big[~big["user_id"].isin(held_out) & big["timestamp"].notna()]
    assert len(out) == len(kept) and held_out and not set(out["user_id"].astype(int)) & held_out
    assert set(out["user_id"].astype(int)) >= {1, 3, 5}           # big-matrix-only users are training users
    assert (out["split"] == "train").all()
    pairs = list(zip(out["user_id"].astype(int), out["timestamp"].astype(int), strict=True))
    assert pairs == sorted(pairs)
    expected = kept.assign(row=np.arange(len(kept))).sort_values(["user_id", "timestamp", "row"], kind="stable")
    assert out["item_id"].astype(str).tolist() == expected["video_id"].astype(str).tolist()
    assert np.allclose(out["value"], expected["watch_ratio"])


def test_organic_log_keeps_an_already_ordered_file_as_is() -> None:
    big = pd.DataFrame({"user_id": np.array([5, 5, 7, 7], dtype=np.int32),
                        "video_id": np.array([3, 1, 1, 2], dtype=np.int32),
                        "timestamp": [1.0, 1.0, 0.5, 2.0], "watch_ratio": [0.1, 0.2, 0.3, 0.4]})
    out = organic_log(big, np.array([1], dtype=np.int32), 0)
    assert out["item_id"].tolist() == ["3", "1", "1", "2"] and list(out["item_id"].cat.categories) == ["1", "2", "3"]
