"""Token mapping of item and sequence advantages."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.train.credit.tokens import token_advantages, token_item_index


def test_item_tokens_get_item_advantage() -> None:
    text = "Ranking: [i01, i22]<eos>"
    spans = [(text.index("i01"), text.index("i01") + 3), (text.index("i22"), text.index("i22") + 3)]
    # tokens: "Ranking", ":", " [", "i0", "1", ",", " i", "22", "]", <eos> (zero width)
    offsets = [(0, 7), (7, 8), (8, 10), (10, 12), (12, 13), (13, 14), (14, 16), (16, 18), (18, 19), (0, 0)]
    out = token_advantages(offsets, spans, [0.5, -1.5], seq_adv=0.25)
    np.testing.assert_allclose(out, [0.25, 0.25, 0.25, 0.5, 0.5, 0.25, -1.5, -1.5, 0.25, 0.25])


def test_token_overlapping_two_items_goes_to_larger_overlap() -> None:
    spans = [(0, 3), (4, 7)]
    index = token_item_index([(2, 6), (1, 5), (3, 4)], spans)
    np.testing.assert_array_equal(index, [1, 0, -1])  # 1 vs 2 chars; tie -> earlier; separator only


def test_no_items_and_bad_lengths() -> None:
    np.testing.assert_allclose(token_advantages([(0, 2), (2, 4)], [], [], seq_adv=-0.5), [-0.5, -0.5])
    assert token_advantages([], [(0, 2)], [1.0], 0.0).shape == (0,)
    with pytest.raises(ValueError):
        token_advantages([(0, 2)], [(0, 2)], [1.0, 2.0], 0.0)
