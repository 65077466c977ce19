"""Instance construction: splits, sparsification, windows, and prepared samples' invariants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flexbench.audit import ORDER_TOLERANCE, audit_dataset, popularity_auc
from flexbench.datasets.prepare import PrepareConfig, prepare
from flexbench.errors import FlexBenchError
from flexbench.instances import (
    PROTOCOL_VERSION,
    anchor_windows,
    sparsify,
    split_users,
    storage_key,
    subsample,
)
from flexbench.prepared import PreparedDataset
from needs.novelty import novelty_gains
from needs.trend import trend_gains


def test_split_users_is_seeded_80_10_10() -> None:
    a, b = split_users(np.arange(100), 3), split_users(np.arange(100), 3)
    assert (a == b).all() and (a != split_users(np.arange(100), 4)).any()
    assert {s: int((a == s).sum()) for s in ("train", "valid", "test")} == {"train": 80, "valid": 10, "test": 10}


def test_sparsify_keeps_ten_percent_of_each_user() -> None:
    users = np.repeat(np.arange(5), [100, 40, 5, 1, 33])
    mask = sparsify(users, 0.1, 0)
    assert np.bincount(users[mask]).tolist() == [10, 4, 1, 1, 3]
    assert (mask == sparsify(users, 0.1, 0)).all() and (mask != sparsify(users, 0.1, 1)).any()


def test_anchor_windows_take_the_previous_rows_of_the_same_user() -> None:
    win = anchor_windows(np.array([0, 0, 0, 0, 1, 1, 1]), history_len=2, min_history=1)
    assert win.anchor.tolist() == [1, 2, 3, 5, 6]
    assert win.history.tolist() == [[-1, 0], [0, 1], [1, 2], [-1, 4], [4, 5]]
    with pytest.raises(ValueError, match="grouped"):
        anchor_windows(np.array([0, 1, 0]), 2, 1)


def test_subsample_caps_each_split() -> None:
    split = np.array(["train"] * 10 + ["test"] * 3)
    picked = subsample(split, {"train": 4, "valid": 5, "test": 5}, 0)
    assert len(picked) == 7 and (split[picked] == "train").sum() == 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PreparedDataset]:
    root, cache = tmp_path_factory.mktemp("prepared"), tmp_path_factory.mktemp("emb")
    out = {}
    for ds, variant in (("kuairec", "sparse"), ("kuairec", "dense"), ("ml-1m", "sparse"), ("esci", "sparse")):
        cfg = PrepareConfig(ds, variant=variant, encoder="hash", n_train=300, n_valid=60, n_test=60)
        out[cfg.name] = prepare(cfg, None, root, cache=cache)
    return out


def test_prepare_is_deterministic(prepared: dict[str, PreparedDataset], tmp_path: Path) -> None:
    again = prepare(PrepareConfig("kuairec", encoder="hash", n_train=300, n_valid=60, n_test=60), None, tmp_path,
                    cache=tmp_path / "emb")
    assert again.fingerprint == prepared["kuairec"].fingerprint
    other = prepare(PrepareConfig("kuairec", encoder="hash", n_train=300, n_valid=60, n_test=60, seed=1), None,
                    tmp_path / "s1", cache=tmp_path / "emb")
    assert other.fingerprint != again.fingerprint


@pytest.mark.parametrize("name", ["kuairec", "ml-1m"])
def test_sequential_invariants(prepared: dict[str, PreparedDataset], name: str) -> None:
    ds = prepared[name]
    frame = ds._instances_frame
    users = frame.groupby("split")["user_id"].agg(set)
    assert not users["train"] & users["test"] and not users["train"] & users["valid"]
    inter = ds.interactions(None)
    assert inter.groupby("user_id")["split"].nunique().max() == 1
    user_split = inter.drop_duplicates("user_id").set_index("user_id")["split"]
    assert (frame["user_id"].map(user_split) == frame["split"]).all()
    for x in ds.instances():
        assert not {h.item_id for h in x.history} & set(x.candidate_ids)
        assert x.k == 30 and 3 <= len(x.history) <= 10
        assert [h.timestamp for h in x.history] == sorted(h.timestamp for h in x.history)
        assert x.history[-1].timestamp <= x.query_time
    assert ds.needs == ("interest", "novelty", "trend", "novelty-v2", "trend-v2")
    for need in ds.needs:
        labels = ds.labels(need)
        assert len(labels) == len(frame) and all(len(lab.gains) == 30 for lab in labels.values())


def test_kuairec_histories_come_from_the_sparse_view_only(prepared: dict[str, PreparedDataset]) -> None:
    ds = prepared["kuairec"]
    sparse = set(zip(ds.interactions(None)["user_id"], ds.interactions(None)["item_id"], strict=True))
    for x in ds.instances():
        assert all((x.user_id, h.item_id) in sparse for h in x.history)
    per_user = ds.interactions(None).groupby("user_id").size()
    assert per_user.max() <= 16                       # 10% of 160 videos
    dense = prepared["kuairec-dense"]
    assert dense.variant == "dense" and len(dense.interactions(None)) == 15_940
    pd.testing.assert_frame_equal(dense._instances_frame, ds._instances_frame)
    pd.testing.assert_frame_equal(dense._labels_frame, ds._labels_frame)


def test_ml1m_candidate_rule(prepared: dict[str, PreparedDataset]) -> None:
    ds = prepared["ml-1m"]
    ratings = ds.interactions(None)
    for x in ds.instances("test")[:40]:
        mine = ratings[ratings["user_id"] == x.user_id]
        past = set(mine.loc[mine["timestamp"] < x.query_time, "item_id"])
        future = set(mine.loc[mine["timestamp"] >= x.query_time, "item_id"])
        cands = set(x.candidate_ids)
        assert not cands & (past - future)
        assert 1 <= len(cands & future) <= 10
        gains = ds.labels("interest")[x.instance_id].gain_of()
        assert all((gains[c] > 0) == (c in future) for c in cands)


def test_esci_instances(prepared: dict[str, PreparedDataset]) -> None:
    ds = prepared["esci"]
    assert ds.needs == ("esci",)
    xs = ds.instances()
    assert {x.split.value for x in xs} == {"train", "valid", "test"}
    assert all(x.query and not x.history and x.k <= 30 for x in xs)
    labels = ds.labels("esci")
    assert all(set(g) <= {1.0, 0.1, 0.01, 0.0} for g in (lab.gains for lab in labels.values()))


def test_config_validation() -> None:
    with pytest.raises(FlexBenchError, match="dense variant"):
        PrepareConfig("ml-1m", variant="dense")
    with pytest.raises(FlexBenchError, match="unknown dataset"):
        PrepareConfig("netflix")


def test_stored_order_is_the_seeded_hash_order(prepared: dict[str, PreparedDataset]) -> None:
    for name in ("kuairec", "ml-1m", "esci"):
        ds = prepared[name]
        assert ds.protocol_version == PROTOCOL_VERSION and ds.meta["protocol_version"] == PROTOCOL_VERSION
        for x in ds.instances():
            assert list(x.candidate_ids) == sorted(x.candidate_ids, key=lambda c, i=x.instance_id: (
                storage_key(0, i, c), c))
            assert all(c.retrieval_score is not None for c in x.candidates)


def test_labels_follow_from_the_stored_per_candidate_signals(prepared: dict[str, PreparedDataset]) -> None:
    """Scores, 24 h counts and topics are aligned with the candidates: the labels recompute from them."""
    for name in ("kuairec", "ml-1m"):
        ds = prepared[name]
        labels = {need: ds.labels(need) for need in ds.needs}
        for x in ds.instances()[::7]:
            sims = np.array([[c.retrieval_score for c in x.candidates]])
            counts = np.array([[c.recent_count for c in x.candidates]])
            seen = {t for h in x.history for t in h.topics}
            niche = np.array([[bool(c.topics) and not set(c.topics) & seen for c in x.candidates]])
            interest = np.array([labels["interest"][x.instance_id].gains])
            expected = {"novelty": novelty_gains(sims, niche), "novelty-v2": novelty_gains(interest, niche),
                        "trend": trend_gains(sims, counts), "trend-v2": trend_gains(interest, counts)}
            for need, gains in expected.items():
                np.testing.assert_allclose(labels[need][x.instance_id].gains, gains[0], atol=1e-9)


def test_ml1m_recent_counts_are_every_rating_in_the_24h_before_the_query(prepared: dict[str, PreparedDataset]) -> None:
    ds = prepared["ml-1m"]
    ratings = ds.interactions(None)
    stamps = ratings["timestamp"].to_numpy(dtype=np.int64)
    for x in ds.instances("test")[:20]:
        window = ratings[(stamps >= x.query_time - 86_400) & (stamps < x.query_time)]["item_id"].value_counts()
        assert [c.recent_count for c in x.candidates] == [int(window.get(c.item_id, 0)) for c in x.candidates]


def test_audit_canary_and_no_trivial_ranker_near_the_oracle(prepared: dict[str, PreparedDataset]) -> None:
    for name in ("kuairec", "ml-1m", "esci"):
        for row in audit_dataset(prepared[name], "train"):
            assert abs(row.scores["candidate-order"] - row.scores["random"]) <= ORDER_TOLERANCE, (name, row)
            assert not [w for w in row.warnings if w.startswith("WARNING")], (name, row.warnings)


def test_popularity_matched_fillers_are_as_popular_as_rated_items(prepared: dict[str, PreparedDataset],
                                                                  tmp_path: Path) -> None:
    """On the sample raters prefer popular movies: top-retrieved fillers are told apart by popularity."""
    legacy = prepare(PrepareConfig("ml-1m", encoder="hash", n_train=300, n_valid=60, n_test=60,
                                   build={"filler": "top-retrieved"}), None, tmp_path, cache=tmp_path / "emb")
    matched = popularity_auc(prepared["ml-1m"], "interest", "train")
    old = popularity_auc(legacy, "interest", "train")
    assert matched is not None and old is not None
    assert abs(matched - 0.5) < 0.05 and old > 0.65, (matched, old)
