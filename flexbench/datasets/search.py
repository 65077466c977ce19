"""ESCI instances: one per query of the reduced set (SPEC section 2).

Locale ``us``, ``small_version == 1``; the official ``split`` gives train and
test, and a seeded 10% of the official train queries is held out as ``valid``
(test stays exactly the official test). Candidates are the query's judged
products; where a query has more than ``K``, the ``K`` best under the frozen
retriever (cosine of query and product embeddings, ties by product ID) are
kept. They are stored in the seeded hash order of
:func:`flexbench.instances.storage_order` (protocol 2: no label or retrieval
signal), each product's cosine as ``candidate_scores``. The context is the
query text. Labels: :mod:`needs.esci`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flexbench.instances import rng_for, storage_key
from needs.esci import GRADES, esci_labels


def query_table(joined: pd.DataFrame, seed: int, valid_fraction: float = 0.1) -> pd.DataFrame:
    """One row per query: ``query_id, query, split`` (valid carved from official train)."""
    queries = joined.groupby("query_id", sort=True).agg(query=("query", "first"), split=("split", "first"))
    queries = queries.reset_index()
    train = np.flatnonzero(queries["split"].to_numpy() == "train")
    held = rng_for(seed, 21).choice(train, round(valid_fraction * len(train)), replace=False)
    split = queries["split"].to_numpy(dtype=object).copy()
    split[held] = "valid"
    queries["split"] = split
    return queries


def build_search(joined: pd.DataFrame, queries: pd.DataFrame, query_emb: np.ndarray, items: pd.DataFrame,
                 item_emb: np.ndarray, k: int, *, seed: int = 0) -> tuple[pd.DataFrame, list, pd.DataFrame]:
    """``(instances frame, labels, interactions)`` for the queries in ``queries`` (row-aligned with ``query_emb``)."""
    index = {pid: i for i, pid in enumerate(items["item_id"])}
    groups = {qid: g for qid, g in joined.groupby("query_id", sort=False)}
    rows, cand_ids, grades, inter = [], [], [], []
    for q, (qid, text, split) in enumerate(queries[["query_id", "query", "split"]].itertuples(index=False)):
        g = groups[qid]
        pids = g["product_id"].to_numpy(dtype=object)
        sims = item_emb[[index[p] for p in pids]] @ query_emb[q]
        kept = np.lexsort((pids.astype(str), -sims.astype(np.float64)))[:k]
        iid = f"esci-{qid}"
        order = sorted(kept, key=lambda o: (storage_key(seed, iid, str(pids[o])), str(pids[o])))
        chosen = [str(pids[o]) for o in order]
        labs = [str(x) for x in g["esci_label"].to_numpy()[order]]
        rows.append({"instance_id": iid, "split": split, "user_id": None, "query": text,
                     "query_time": None, "history_item_ids": [], "history_engagement": [],
                     "history_timestamps": [], "candidate_ids": chosen,
                     "candidate_scores": [float(sims[o]) for o in order]})
        cand_ids.append(chosen)
        grades.append(labs)
        inter += [(str(qid), p, GRADES[lab], None, split) for p, lab in zip(chosen, labs, strict=True)]
    frame = pd.DataFrame(rows)
    frame["query_time"] = frame["query_time"].astype("Int64")
    labels = esci_labels(list(frame["instance_id"]), cand_ids, grades)
    interactions = pd.DataFrame(inter, columns=["user_id", "item_id", "value", "timestamp", "split"])
    interactions["timestamp"] = interactions["timestamp"].astype("Int64")
    return frame, labels, interactions
