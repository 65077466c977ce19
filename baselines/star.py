"""STAR: training-free scoring from semantic and collaborative item similarity (SPEC section 5).

Reference: Lee et al., "STAR: A Simple Training-free Approach for Recommendations
using Large Language Models", 2025, arXiv:2410.16458 (its scoring stage).

For an instance with history ``h_1 .. h_m`` (oldest first) the last
``n = min(l, m)`` items are used; ``t_j`` counts steps back from the most recent
(``t_j = 0`` for ``h_m``), ``r_j`` is the item's engagement (KuaiRec watch ratio,
ML-1M rating). A candidate ``c`` scores

    score(c) = (1/n) * sum_j r_j * lambda^(t_j) * [a * cos_sem(c, h_j) + (1 - a) * cos_collab(c, h_j)]

with ``l = 3``, ``lambda = 0.7``, ``a = 0.5`` by default:

* ``cos_sem`` — cosine of the frozen retriever's item embeddings
  (``item_embeddings.npy``, rows aligned with ``items.parquet``);
* ``cos_collab`` — cosine of the items' binary user-interaction vectors over
  the training users' observable interactions (``split == "train"``):
  ``v_i[u] = 1`` if training user ``u`` interacted with ``i``. An item no
  training user touched has a zero vector and ``cos_collab = 0``.

Ties are broken by item ID. The rule needs no training and no seed, and it
never reads the stored candidate order.

Query datasets (ESCI, paper Table 3's STAR row): there is no history, so there is
no collaborative term (``cos_collab`` needs items the user interacted with) and no
temporal decay. The query text plays the part of the single, most recent history
item with weight 1, which leaves the semantic term:

    score(c) = cos_sem(c, q) = <e_c, e_q>

with ``e_q`` the query's embedding by the dataset's frozen encoder (recorded in
``meta.json``; computed at rank time and cached). It equals the retriever's
stored ``candidate_scores`` of protocol 2; ``a`` is irrelevant (a positive factor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from baselines.scoring import has_histories, rank_by_score
from flexbench.embeddings import embed_texts
from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.types import Instance, NeedSpec, Ranking, Split


@dataclass(frozen=True, slots=True)
class STARConfig:
    """STAR's scoring parameters (defaults from the paper; ranker options of the same names override)."""

    history_length: int = 3   # l
    decay: float = 0.7        # lambda
    semantic_weight: float = 0.5  # a

    def __post_init__(self) -> None:
        if self.history_length < 1:
            raise FlexBenchError(f"star option history_length must be >= 1, got {self.history_length}")
        if not 0 < self.decay <= 1:
            raise FlexBenchError(f"star option decay must be in (0, 1], got {self.decay}")
        if not 0 <= self.semantic_weight <= 1:
            raise FlexBenchError(f"star option semantic_weight must be in [0, 1], got {self.semantic_weight}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> STARConfig:
        """Pick this config's keys from ranker options (other options belong to the CLI or registry)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def interaction_vectors(item_index: Mapping[str, int], user_ids: Sequence[str], item_ids: Sequence[str]) -> sp.csr_matrix:
    """L2-normalised binary item x user matrix from (user, item) pairs; unknown items are dropped."""
    rows = np.array([item_index.get(i, -1) for i in item_ids], dtype=np.int64)
    users, cols = np.unique(np.asarray(user_ids, dtype=str), return_inverse=True)
    keep = rows >= 0
    matrix = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])),
                           shape=(len(item_index), len(users)))
    matrix.data[:] = 1.0  # duplicates summed by the constructor count once
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


class STARScorer:
    """The STAR rule over index-aligned semantic and collaborative item vectors."""

    def __init__(self, item_ids: Sequence[str], embeddings: np.ndarray, collab: sp.csr_matrix,
                 config: STARConfig = STARConfig()) -> None:
        if len(item_ids) != len(embeddings) or collab.shape[0] != len(item_ids):
            raise ValueError("item IDs, embeddings and interaction vectors must be row-aligned")
        self.index = {item: i for i, item in enumerate(item_ids)}
        self.semantic = _unit_rows(np.asarray(embeddings, dtype=np.float64))
        self.collab = collab
        self.config = config

    def scores(self, instances: Sequence[Instance]) -> list[np.ndarray]:
        """``score(c)`` for each instance's candidates, all pairs of a batch computed at once."""
        l, width = self.config.history_length, max(x.k for x in instances)
        n = len(instances)
        cand = np.zeros((n, width), dtype=np.int64)
        hist = np.zeros((n, l), dtype=np.int64)
        weight = np.zeros((n, l))  # r_j * lambda^(t_j) / n, 0 on padding
        for row, x in enumerate(instances):
            cand[row, : x.k] = [self.index[c] for c in x.candidate_ids]
            recent = x.history[-l:][::-1]  # t_j = 0, 1, ...
            hist[row, : len(recent)] = [self.index[h.item_id] for h in recent]
            weight[row, : len(recent)] = [h.engagement * self.config.decay ** t / len(recent)
                                          for t, h in enumerate(recent)]
        sem = np.einsum("nkd,nld->nkl", self.semantic[cand], self.semantic[hist])
        pairs_c = np.repeat(cand.ravel(), l)
        pairs_h = np.tile(hist, (1, width)).ravel()
        collab = np.asarray(self.collab[pairs_c].multiply(self.collab[pairs_h]).sum(axis=1)).reshape(n, width, l)
        a = self.config.semantic_weight
        total = np.einsum("nkl,nl->nk", a * sem + (1 - a) * collab, weight)
        return [total[row, : x.k] for row, x in enumerate(instances)]


def build_scorer(dataset: PreparedDataset, config: STARConfig) -> STARScorer:
    """A scorer from the dataset's item embeddings and training interactions."""
    stored = dataset.item_embeddings()
    if stored is None:
        raise RankerUnavailable(f"star needs item embeddings; {dataset.name!r} has none "
                                f"(run `flexbench data prepare {dataset.name}`)")
    item_ids, embeddings = stored
    train = dataset.interactions(Split.TRAIN)
    collab = interaction_vectors({item: i for i, item in enumerate(item_ids)},
                                 train["user_id"].astype(str).tolist(), train["item_id"].astype(str).tolist())
    return STARScorer(item_ids, embeddings, collab, config)


class QuerySTARScorer:
    """STAR without a history: ``score(c) = <e_c, e_q>`` with the query embedded by the frozen encoder."""

    def __init__(self, item_ids: Sequence[str], embeddings: np.ndarray, encoder: str, cache: Path) -> None:
        self.index = {item: i for i, item in enumerate(item_ids)}
        self.semantic = _unit_rows(np.asarray(embeddings, dtype=np.float64))
        self.encoder, self.cache = encoder, cache

    def scores(self, instances: Sequence[Instance]) -> list[np.ndarray]:
        """The query-candidate cosines of each instance (one encoder call per batch)."""
        if any(x.query is None for x in instances):
            raise FlexBenchError("star on a query dataset needs a query on every instance")
        queries = _unit_rows(np.asarray(embed_texts([str(x.query) for x in instances], self.encoder,
                                                    cache=self.cache, progress=False), dtype=np.float64))
        return [self.semantic[[self.index[c] for c in x.candidate_ids]] @ q
                for x, q in zip(instances, queries, strict=True)]


def build_query_scorer(dataset: PreparedDataset, cache: Path) -> QuerySTARScorer:
    """A query scorer from the dataset's item embeddings and its recorded encoder."""
    stored = dataset.item_embeddings()
    encoder = dataset.meta.get("config", {}).get("encoder")
    if stored is None or not encoder:
        raise RankerUnavailable(f"star on query dataset {dataset.name!r} needs item embeddings and the encoder "
                                f"that made them (run `flexbench data prepare {dataset.name}`)")
    return QuerySTARScorer(stored[0], stored[1], str(encoder), cache)


class STARRanker(RankerBase):
    """The ``star`` ranker (module docstring); need-agnostic and deterministic."""

    def __init__(self, ctx: RankerContext) -> None:
        self.name = str(ctx.options.get("registry_name", "star"))
        config = STARConfig.from_options(ctx.options)
        self.scorer: STARScorer | QuerySTARScorer = (
            build_scorer(ctx.dataset, config) if has_histories(ctx.dataset)
            else build_query_scorer(ctx.dataset, Path(ctx.cache_dir) / "embeddings"))
        encoder = ctx.dataset.meta.get("config", {}).get("encoder")
        self.model = f"{encoder} embeddings" if encoder else None  # STAR's only model: the frozen encoder
        mode = {"context": "history"} if isinstance(self.scorer, STARScorer) else {"context": "query"}
        self._provenance = {"model": self.model, "star": {**asdict(config), **mode}}
        self.batch_size = int(ctx.options.get("batch_size", 512))

    def provenance(self, need: str) -> dict[str, Any]:
        """The encoder (STAR's only model) and STAR's settings."""
        return self._provenance

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One ranking per instance, in input order (the need is ignored)."""
        out: list[Ranking] = []
        for start in range(0, len(instances), self.batch_size):
            batch = instances[start:start + self.batch_size]
            out += [Ranking(x.instance_id, rank_by_score(x.candidate_ids, s))
                    for x, s in zip(batch, self.scorer.scores(batch), strict=True)]
        return out
