"""User-KNN and Item-KNN imputers against a hand-computed 3 x 3 case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flexbench.train.signal.knn import ItemKNN, UserKNN

# users a: x=1 y=2; b: x=2 y=4 z=3; c: y=1 z=5
FRAME = pd.DataFrame(
    {
        "user_id": ["a", "a", "b", "b", "b", "c", "c"],
        "item_id": ["x", "y", "x", "y", "z", "y", "z"],
        "value": [1.0, 2.0, 2.0, 4.0, 3.0, 1.0, 5.0],
    }
)
PROFILE = {"x": 1.0, "y": 2.0}  # user a


def test_user_knn_hand_computed() -> None:
    sim_b = 10 / np.sqrt(5 * 29)  # <(1,2,0), (2,4,3)> / (|.| |.|)
    sim_c = 2 / np.sqrt(5 * 26)  # <(1,2,0), (0,1,5)>
    knn = UserKNN(FRAME, k=2)
    z, x = knn.predict(PROFILE, ["z", "x"], exclude_user="a")
    assert z == pytest.approx((sim_b * 3 + sim_c * 5) / (sim_b + sim_c), abs=1e-12)
    assert x == pytest.approx(2.0)  # only b observed x once a is excluded
    assert UserKNN(FRAME, k=1).predict(PROFILE, ["z"])[0] == pytest.approx(3.0)  # nearest user b


def test_item_knn_hand_computed() -> None:
    s_zx = 6 / np.sqrt(5 * 34)  # <(1,2,0), (0,3,5)> over users a, b, c
    s_zy = 17 / np.sqrt(21 * 34)  # <(2,4,1), (0,3,5)>
    est = ItemKNN(FRAME, k=2).predict(PROFILE, ["z"])[0]
    assert est == pytest.approx((s_zx * 1 + s_zy * 2) / (s_zx + s_zy), abs=1e-12)
    assert ItemKNN(FRAME, k=1).predict(PROFILE, ["z"])[0] == pytest.approx(2.0)  # y is z's nearest


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
def test_fallbacks(cls: type) -> None:
    knn = cls(FRAME, k=5)
    np.testing.assert_allclose(knn.predict(PROFILE, ["unknown"]), [1.5])  # profile mean
    np.testing.assert_allclose(knn.predict({}, ["z"]), [18 / 7])  # global mean of R
    np.testing.assert_allclose(knn.predict({"other": 4.0}, ["z"]), [4.0])  # profile outside R


def test_observed_zero_values_count_as_observed() -> None:
    frame = pd.DataFrame(
        {"user_id": ["a", "a", "b", "b"], "item_id": ["x", "z", "x", "z"], "value": [1.0, 0.0, 1.0, 3.0]}
    )
    # user a watched z with value 0 and is a neighbour (sim 1); b has sim 1/sqrt(10). Without the
    # observed mask, a's 0 would look unobserved and the estimate would be b's 3.0.
    sim_b = 1 / np.sqrt(10)
    assert UserKNN(frame, k=5).predict({"x": 1.0}, ["z"])[0] == pytest.approx(sim_b * 3 / (1 + sim_b))
