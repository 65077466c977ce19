"""STAR-style retrieval: query vector formula, exclusion of history, deterministic ties."""

from __future__ import annotations

import numpy as np
import pytest

from flexbench.embeddings import HashingEncoder, cache_key, embed_texts
from flexbench.retrieval import query_vectors, retrieve, top_k


def test_query_vector_is_engagement_weighted_and_discounted() -> None:
    emb = np.eye(3, dtype=np.float32)
    q = query_vectors(np.array([[-1, 0, 1, 2]]), np.array([[9.0, 2.0, 1.0, 1.0]]), emb, lam=0.7)
    expected = np.array([2 * 0.49, 1 * 0.7, 1 * 1.0])     # t_j = 0 for the most recent (item 2)
    np.testing.assert_allclose(q[0], expected / np.linalg.norm(expected), rtol=1e-6)


def test_all_zero_weights_fall_back_to_uniform() -> None:
    emb = np.eye(2, dtype=np.float32)
    q = query_vectors(np.array([[0, 1]]), np.array([[0.0, 0.0]]), emb, lam=1.0)
    np.testing.assert_allclose(q[0], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)


def test_retrieve_excludes_history_and_breaks_ties_by_index() -> None:
    emb = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    cands, sims, _ = retrieve(np.array([[1]]), np.array([[1.0]]), emb, k=3)
    assert cands.tolist() == [[0, 2, 4]]
    np.testing.assert_allclose(sims[0], [1.0, 1.0, 0.6], rtol=1e-6)
    with pytest.raises(ValueError, match="fewer than k"):
        top_k(np.zeros((1, 2)), 2, np.array([[0]]))


def test_embedding_cache_is_keyed_by_encoder_and_texts(tmp_path) -> None:
    texts = ["a cat video", "a dog video"]
    first = embed_texts(texts, "hash", cache=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    np.testing.assert_array_equal(embed_texts(texts, "hash", cache=tmp_path, progress=False), first)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    assert cache_key("hash", texts) != cache_key("hash", texts[::-1])
    assert np.allclose(HashingEncoder().encode(["a cat video"]), first[:1])
