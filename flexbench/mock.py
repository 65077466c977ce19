"""A small deterministic mock dataset in the prepared layout, for tests and the harness.

120 users, 400 items in 8 topics, K = 30 candidates, histories of 10 items.
Users and items have latent vectors; the retriever's item embeddings are the
item latents plus noise, so the retriever order is informative but imperfect.
Labels follow the SPEC section 3 formulas on this synthetic world:

* interest: a watch-ratio-like ``max(0, 1 + 0.8 * <u, v> + noise)``;
* novelty: min-max of the mean of two cosines to the history's query vector
  (one between retriever embeddings, one between latent item vectors),
  doubled (beta = 1) for candidates whose topic is absent from the history;
* trend: ``0.5 * minmax(sim) + 0.5 * minmax(trend count)`` with the same
  similarity.

The labels' similarity half uses the latents, the retriever only the noisy
embeddings, so the candidate order is a good but not perfect ranker for every need.

Everything is seeded; the same call writes the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.prepared import PreparedDataset, instances_frame, labels_frame, write_prepared
from flexbench.types import Candidate, HistoryItem, Instance, NeedLabels, Split
from flexbench.vocabulary import DATASET_NEEDS
from needs.labels import minmax, relevant_set

N_USERS, N_ITEMS, N_TOPICS, DIM, K, HISTORY = 120, 400, 8, 16, 30, 10
TOPIC_NAMES = ("comedy", "music", "sports", "cooking", "travel", "gaming", "pets", "science")


def _split_of(user: int) -> Split:
    return Split.TRAIN if user % 10 < 8 else (Split.VALID if user % 10 == 8 else Split.TEST)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_mock_dataset(root: Path, seed: int = 7) -> PreparedDataset:
    """Generate the mock dataset and write it to ``root``."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, N_TOPICS, N_ITEMS)
    centers = rng.normal(size=(N_TOPICS, DIM))
    item_lat = centers[topics] + 0.6 * rng.normal(size=(N_ITEMS, DIM))
    user_lat = rng.normal(size=(N_USERS, DIM)) * 0.5
    emb = _unit(item_lat + 0.5 * rng.normal(size=(N_ITEMS, DIM))).astype(np.float32)
    popularity = rng.pareto(1.5, N_ITEMS) + 1.0
    item_ids = [f"i{j:04d}" for j in range(N_ITEMS)]
    texts = [f"Video caption: {TOPIC_NAMES[t]} clip {j}\nCategory path: {TOPIC_NAMES[t]}\nVideo tag: {t}"
             for j, t in enumerate(topics)]
    items = pd.DataFrame({"item_id": item_ids, "text": texts,
                          "topics": [[TOPIC_NAMES[t]] for t in topics]})
    text_of = dict(zip(item_ids, texts, strict=True))

    instances, labels, inter_rows = [], [], []
    for u in range(N_USERS):
        affinity = _unit(user_lat[u]) @ _unit(item_lat).T
        liked = np.argsort(-(affinity + 0.3 * rng.normal(size=N_ITEMS)))[:60]
        hist = rng.choice(liked, HISTORY, replace=False)
        t0 = 1_600_000_000 + u * 3_600
        engagement = np.clip(1 + 0.8 * affinity[hist] + 0.2 * rng.normal(size=HISTORY), 0, None)
        history = tuple(HistoryItem(item_ids[j], text_of[item_ids[j]], float(e), t0 + 60 * n)
                        for n, (j, e) in enumerate(zip(hist, engagement, strict=True)))
        split = _split_of(u)
        inter_rows += [(f"u{u:03d}", h.item_id, h.engagement, h.timestamp, split.value) for h in history]
        weights = engagement * 0.7 ** np.arange(HISTORY)[::-1]
        query = _unit((weights[:, None] * emb[hist]).sum(0))
        sims = emb @ query
        sims[hist] = -np.inf
        cand = np.argsort(-sims, kind="stable")[:K]
        cand_ids = tuple(item_ids[j] for j in cand)
        inst = Instance(f"mock-{u:03d}", "mock", split, tuple(Candidate(i, text_of[i]) for i in cand_ids),
                        user_id=f"u{u:03d}", history=history, query_time=t0 + 60 * HISTORY)
        instances.append(inst)
        interest = np.clip(1 + 0.8 * affinity[cand] + 0.15 * rng.normal(size=K), 0, None)
        latent = _unit(item_lat)
        latent_sims = latent[cand] @ _unit((weights[:, None] * latent[hist]).sum(0))
        base = minmax(list(0.5 * sims[cand] + 0.5 * latent_sims))
        seen = {topics[j] for j in hist}
        novelty = [b * 2.0 if topics[j] not in seen else b for b, j in zip(base, cand, strict=True)]
        trend_counts = rng.poisson(popularity[cand])
        trend = [0.5 * s + 0.5 * c for s, c in zip(base, minmax(list(trend_counts.astype(float))), strict=True)]
        for need, gains in (("interest", list(interest)), ("novelty", novelty), ("trend", trend)):
            gains = [float(g) for g in gains]
            labels.append(NeedLabels(inst.instance_id, need, cand_ids, tuple(gains),
                                     relevant_set(cand_ids, gains)))
    interactions = pd.DataFrame(inter_rows, columns=["user_id", "item_id", "value", "timestamp", "split"])
    return write_prepared(
        root, dataset="mock", variant="sparse", needs=DATASET_NEEDS["mock"],
        instances=instances_frame(instances), items=items, labels=labels_frame(labels),
        interactions=interactions, embeddings=emb, config={"seed": seed, "generator": "flexbench.mock"},
    )
