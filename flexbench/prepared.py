"""On-disk layout of a prepared dataset, and its reader and writer.

``flexbench data prepare`` and the built-in mock dataset both write this layout;
every ranker, trainer and the harness read it through :class:`PreparedDataset`.

``<data>/prepared/<name>/``::

    meta.json             schema_version, protocol_version, dataset, variant, needs, config, fingerprint
    instances.parquet     instance_id, split, user_id, query, query_time,
                          history_item_ids, history_engagement, history_timestamps,
                          candidate_ids  (protocol >= 2: seeded hash order, no label or retrieval signal),
                          candidate_scores, candidate_recent_counts  (optional, aligned with candidate_ids:
                          the retriever's cosine; interactions in the 24 h before query_time)
    items.parquet         item_id, text, topics  (row i <-> item_embeddings.npy row i)
    labels.parquet        instance_id, need, gains (aligned with candidate_ids), relevant
    interactions.parquet  user_id, item_id, value, timestamp, split
                          (the observable view: KuaiRec's 10% sparse sample)
    organic.parquet       same columns, optional: a platform's organic log of
                          training users (KuaiRec's big matrix, all videos)
    item_embeddings.npy   float32 [n_items, dim], L2-normalised (optional)

The fingerprint is a SHA-256 over the data files' bytes and the protocol version
(:data:`flexbench.instances.PROTOCOL_VERSION`, docs/PROTOCOL.md), recorded by the
result store so that a result always names the exact data and protocol it was computed on.
``meta.json["files"]`` records each file's size and SHA-256; every read is checked
against it (:mod:`flexbench.prepared_check`), so the data read is the data fingerprinted.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flexbench.errors import FlexBenchError
from flexbench.prepared_check import check_files, file_hashes, read_meta, read_verified
from flexbench.types import Candidate, HistoryItem, Instance, NeedLabels, Split

SCHEMA_VERSION = 1
ORGANIC_FILE = "organic.parquet"
DATA_FILES = ("instances.parquet", "items.parquet", "labels.parquet", "interactions.parquet", ORGANIC_FILE)
EMBEDDINGS_FILE = "item_embeddings.npy"


class DatasetNotPrepared(FlexBenchError):
    """The prepared directory is missing; the message says which command creates it."""


def _fingerprint(root: Path, protocol_version: int | None = None) -> str:
    digest = hashlib.sha256()
    if protocol_version is not None:
        digest.update(f"protocol_version={protocol_version}".encode())
    for name in (*DATA_FILES, EMBEDDINGS_FILE):
        path = root / name
        if path.exists():
            digest.update(name.encode())
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


class PreparedDataset:
    """Read access to one prepared dataset directory (see module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.meta: dict[str, Any] = read_meta(self.root, DatasetNotPrepared)
        if self.meta.get("schema_version") != SCHEMA_VERSION:
            raise FlexBenchError(f"{self.root / 'meta.json'}: schema_version {self.meta.get('schema_version')} "
                                 f"is not {SCHEMA_VERSION}; prepare the dataset again")
        self._hashes = check_files(self.root, self.meta, (*DATA_FILES, EMBEDDINGS_FILE), _fingerprint)

    def _read(self, name: str) -> io.BytesIO:
        """File ``name``'s bytes, checked against the hash recorded at prepare time (:mod:`flexbench.prepared_check`)."""
        return io.BytesIO(read_verified(self.root, name, self._hashes, self.meta))

    @property
    def name(self) -> str:
        """Directory name (e.g. ``kuairec`` or ``kuairec-dense``)."""
        return self.root.name

    @property
    def dataset(self) -> str:
        """Dataset key (``kuairec``, ``ml-1m``, ``esci`` or ``mock``)."""
        return str(self.meta["dataset"])

    @property
    def variant(self) -> str:
        """``sparse`` or ``dense`` (KuaiRec training-label variant)."""
        return str(self.meta.get("variant", "sparse"))

    @property
    def needs(self) -> tuple[str, ...]:
        """Needs labelled in this dataset."""
        return tuple(self.meta["needs"])

    @property
    def protocol_version(self) -> int | None:
        """Instance/label protocol the dataset was prepared under (``None``: hand-built, e.g. the mock)."""
        value = self.meta.get("protocol_version")
        return None if value is None else int(value)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the data files, computed when the dataset was written."""
        return str(self.meta["fingerprint"])

    @cached_property
    def items(self) -> pd.DataFrame:
        """Item table indexed by ``item_id`` with columns ``text`` and ``topics``."""
        return pd.read_parquet(self._read("items.parquet")).set_index("item_id", drop=False)

    @cached_property
    def _instances_frame(self) -> pd.DataFrame:
        return pd.read_parquet(self._read("instances.parquet"))

    @cached_property
    def _labels_frame(self) -> pd.DataFrame:
        return pd.read_parquet(self._read("labels.parquet"))

    def instances(self, split: Split | str | None = None, limit: int | None = None) -> list[Instance]:
        """Instances of ``split`` (all when ``None``) in stored order, at most ``limit``."""
        frame = self._instances_frame
        if split is not None:
            frame = frame[frame["split"] == Split(split).value]
        if limit is not None:
            frame = frame.head(limit)
        text = self.items["text"].to_dict()
        topics = {i: tuple(str(t) for t in ts) for i, ts in self.items["topics"].items()}
        return [_row_to_instance(row, self.dataset, text, topics) for row in frame.itertuples(index=False)]

    def labels(self, need: str, split: Split | str | None = None) -> dict[str, NeedLabels]:
        """Labels of ``need`` by instance ID."""
        if need not in self.needs:
            raise ValueError(f"dataset {self.name!r} has no labels for need {need!r}; "
                             f"it has {', '.join(self.needs)}")
        frame = self._labels_frame[self._labels_frame["need"] == need]
        if split is not None:
            ids = set(self._instances_frame.loc[self._instances_frame["split"] == Split(split).value,
                                                "instance_id"])
            frame = frame[frame["instance_id"].isin(ids)]
        cand = self._instances_frame.set_index("instance_id")["candidate_ids"]
        return {
            row.instance_id: NeedLabels(
                instance_id=row.instance_id, need=need,
                candidate_ids=tuple(cand[row.instance_id]),
                gains=tuple(float(g) for g in row.gains),
                relevant=frozenset(row.relevant),
            )
            for row in frame.itertuples(index=False)
        }

    def interactions(self, split: Split | str | None = Split.TRAIN) -> pd.DataFrame:
        """Observable interactions (``user_id, item_id, value, timestamp, split``) of ``split``."""
        frame = pd.read_parquet(self._read("interactions.parquet"))
        return frame if split is None else frame[frame["split"] == Split(split).value].reset_index(drop=True)

    def has_organic(self) -> bool:
        """Whether an organic log of training users is stored (KuaiRec's big matrix)."""
        return (self.root / ORGANIC_FILE).exists()

    def organic_interactions(self) -> pd.DataFrame:
        """The organic log (``user_id, item_id, value, timestamp, split``; training users only)."""
        if not self.has_organic():
            raise FlexBenchError(f"dataset {self.name!r} stores no organic log (only KuaiRec's big matrix is one)")
        frame = pd.read_parquet(self._read(ORGANIC_FILE))
        return frame.assign(user_id=frame["user_id"].astype(str), item_id=frame["item_id"].astype(str),
                            split=frame["split"].astype(str))

    @property
    def positive_engagement(self) -> float | None:
        """Engagement from which a history item counts as positive feedback (KuaiRec: 1.0), if defined."""
        value = self.meta.get("config", {}).get("positive_engagement")
        return None if value is None else float(value)

    def item_embeddings(self) -> tuple[list[str], np.ndarray] | None:
        """``(item_ids, matrix)`` of the frozen retriever's item embeddings, if stored."""
        path = self.root / EMBEDDINGS_FILE
        if not path.exists():
            return None
        return list(self.items["item_id"]), np.load(self._read(EMBEDDINGS_FILE))


def _aligned(row: Any, column: str, n: int) -> list[Any]:
    """Optional per-candidate column of ``row`` (``None`` each where absent)."""
    values = getattr(row, column, None)
    return [None] * n if values is None or np.ndim(values) == 0 else list(values)


def _row_to_instance(row: Any, dataset: str, text: Mapping[str, str],
                     topics: Mapping[str, tuple[str, ...]]) -> Instance:
    stamps = row.history_timestamps if row.history_timestamps is not None else []
    history = tuple(
        HistoryItem(item_id=i, text=text[i], engagement=float(e),
                    timestamp=None if t is None or pd.isna(t) else int(t), topics=topics.get(i, ()))
        for i, e, t in zip(row.history_item_ids, row.history_engagement,
                           list(stamps) + [None] * (len(row.history_item_ids) - len(stamps)),
                           strict=True)
    )
    return Instance(
        instance_id=row.instance_id, dataset=dataset, split=Split(row.split),
        candidates=tuple(
            Candidate(i, text[i], topics.get(i, ()), None if s is None else float(s), None if c is None else int(c))
            for i, s, c in zip(row.candidate_ids, _aligned(row, "candidate_scores", len(row.candidate_ids)),
                               _aligned(row, "candidate_recent_counts", len(row.candidate_ids)), strict=True)),
        user_id=None if row.user_id is None else str(row.user_id),
        history=history,
        query=row.query if isinstance(row.query, str) else None,
        query_time=None if row.query_time is None or pd.isna(row.query_time) else int(row.query_time),
    )


def instances_frame(instances: Iterable[Instance]) -> pd.DataFrame:
    """Turn instances into the ``instances.parquet`` frame."""
    rows = [{
        "instance_id": x.instance_id, "split": x.split.value, "user_id": x.user_id, "query": x.query,
        "query_time": x.query_time,
        "history_item_ids": [h.item_id for h in x.history],
        "history_engagement": [float(h.engagement) for h in x.history],
        "history_timestamps": [h.timestamp for h in x.history],
        "candidate_ids": list(x.candidate_ids),
        **({"candidate_scores": [c.retrieval_score for c in x.candidates]}
           if all(c.retrieval_score is not None for c in x.candidates) else {}),
        **({"candidate_recent_counts": [c.recent_count for c in x.candidates]}
           if all(c.recent_count is not None for c in x.candidates) else {}),
    } for x in instances]
    frame = pd.DataFrame(rows)
    frame["query_time"] = frame["query_time"].astype("Int64")
    return frame


def labels_frame(labels: Iterable[NeedLabels]) -> pd.DataFrame:
    """Turn labels into the ``labels.parquet`` frame."""
    return pd.DataFrame([{
        "instance_id": lab.instance_id, "need": lab.need, "gains": list(lab.gains),
        "relevant": sorted(lab.relevant),
    } for lab in labels])


def write_prepared(
    root: Path,
    *,
    dataset: str,
    variant: str,
    needs: Sequence[str],
    instances: pd.DataFrame,
    items: pd.DataFrame,
    labels: pd.DataFrame,
    interactions: pd.DataFrame,
    embeddings: np.ndarray | None = None,
    config: Mapping[str, Any] | None = None,
    organic: pd.DataFrame | None = None,
    protocol_version: int | None = None,
) -> PreparedDataset:
    """Write a prepared dataset atomically enough for reruns: meta.json is written last.

    ``instances``/``labels`` use the frames of :func:`instances_frame` and
    :func:`labels_frame`; ``items`` needs ``item_id, text, topics``;
    ``interactions`` and ``organic`` need ``user_id, item_id, value, timestamp, split``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta.json").unlink(missing_ok=True)
    missing = {"item_id", "text", "topics"} - set(items.columns)
    if missing:
        raise ValueError(f"items frame lacks columns {sorted(missing)}")
    instances.to_parquet(root / "instances.parquet", index=False)
    items.reset_index(drop=True).to_parquet(root / "items.parquet", index=False)
    labels.to_parquet(root / "labels.parquet", index=False)
    interactions.to_parquet(root / "interactions.parquet", index=False)
    (root / ORGANIC_FILE).unlink(missing_ok=True)
    if organic is not None:
        organic.to_parquet(root / ORGANIC_FILE, index=False)
    if embeddings is not None:
        if len(embeddings) != len(items):
            raise ValueError(f"{len(embeddings)} embeddings for {len(items)} items")
        np.save(root / EMBEDDINGS_FILE, np.asarray(embeddings, dtype=np.float32))
    meta = {
        "schema_version": SCHEMA_VERSION, "protocol_version": protocol_version, "dataset": dataset,
        "variant": variant, "needs": list(needs), "config": dict(config or {}),
        "fingerprint": _fingerprint(root, protocol_version),
        "files": file_hashes(root, (*DATA_FILES, EMBEDDINGS_FILE)),
        "n_instances": len(instances),
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return PreparedDataset(root)
