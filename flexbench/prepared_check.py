"""Verified reading of a prepared dataset: ``meta.json`` checked, every data file checked against its hash.

At prepare time :func:`file_hashes` records, in ``meta.json["files"]``, the size
and SHA-256 of each data file (``{"labels.parquet": {"bytes": 920738,
"sha256": "..."}, ...}``). On open, :func:`check_files` compares sizes and the
set of files (a deleted ``organic.parquet`` is an error naming it); each file is
then read through :func:`read_verified`, which hashes the very bytes that are
parsed, so a file edited or replaced after the dataset was opened (zeroed
labels, a re-prepare by another process) is an error naming the file, never
different numbers under the same fingerprint. A ``meta.json`` written before
the hashes were recorded has its fingerprint recomputed from the files on open.
Cost: one SHA-256 pass per file read (about 1 GB/s), no second read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError

FileHashes = dict[str, dict[str, Any]]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(root: Path, names: Sequence[str]) -> FileHashes:
    """``{name: {"bytes", "sha256"}}`` of each of ``names`` present under ``root``."""
    return {name: {"bytes": (root / name).stat().st_size, "sha256": _sha256(root / name)}
            for name in names if (root / name).is_file()}


def _redo(root: Path, meta: Mapping[str, Any] | None = None) -> str:
    """The command that re-creates ``root`` (from the source recorded in ``meta`` when known)."""
    config = (meta or {}).get("config") or {}
    command = config.get("command")
    if isinstance(command, str) and command:
        return f"run `{command}` again"
    return f"run `flexbench data prepare {root.name}` again"


def read_meta(root: Path, not_prepared: type[FlexBenchError]) -> dict[str, Any]:
    """``root/meta.json`` as an object with the fields every reader needs, or one clear error."""
    path = root / "meta.json"
    if not path.exists():
        raise not_prepared(f"{root} holds no prepared dataset (no meta.json); {_redo(root)}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise FlexBenchError(f"{path}: unreadable ({type(err).__name__}: {str(err)[:80]}); the prepared dataset "
                             f"is damaged: {_redo(root)}") from None
    if not isinstance(meta, dict):
        raise FlexBenchError(f"{path}: a JSON {type(meta).__name__}, expected an object; the prepared dataset "
                             f"is damaged: {_redo(root)}")
    missing = [k for k in ("schema_version", "dataset", "needs", "fingerprint") if k not in meta]
    if missing:
        raise FlexBenchError(f"{path}: lacks {', '.join(missing)}; the prepared dataset is damaged: {_redo(root)}")
    return meta


def check_files(root: Path, meta: Mapping[str, Any], names: Sequence[str],
                fingerprint: Callable[[Path, int | None], str]) -> FileHashes:
    """Check the data files under ``root`` against ``meta``; returns the hashes to verify reads with.

    With ``meta["files"]``: every listed file must exist with its recorded size,
    and no unlisted data file may exist. Without (older datasets): the
    fingerprint is recomputed (``fingerprint(root, protocol_version)``) and must
    equal the recorded one; the hashes are then taken from the files.
    """
    recorded = meta.get("files")
    if recorded is None:
        if fingerprint(root, meta.get("protocol_version")) != meta["fingerprint"]:
            raise FlexBenchError(f"{root}: the data files do not match the fingerprint in meta.json (a file was "
                                 f"edited, deleted or added); {_redo(root, meta)}")
        return file_hashes(root, names)
    for name in names:
        path = root / name
        if name in recorded and not path.is_file():
            raise FlexBenchError(f"{path}: missing (meta.json records it); the prepared dataset is damaged: "
                                 f"{_redo(root, meta)}")
        if name not in recorded and path.exists():
            raise FlexBenchError(f"{path}: not part of the prepared dataset (meta.json does not record it); "
                                 f"delete it or {_redo(root, meta)}")
        if name in recorded and path.stat().st_size != recorded[name]["bytes"]:
            raise FlexBenchError(f"{path}: {path.stat().st_size} bytes, meta.json records "
                                 f"{recorded[name]['bytes']}; the file was changed: {_redo(root, meta)}")
    return dict(recorded)


def read_verified(root: Path, name: str, hashes: Mapping[str, Mapping[str, Any]],
                  meta: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of ``root/name``, after checking them against ``hashes[name]``."""
    path = root / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FlexBenchError(f"{path}: missing; the prepared dataset is damaged: {_redo(root, meta)}") from None
    expected = hashes.get(name, {}).get("sha256")
    if expected is None or hashlib.sha256(data).hexdigest() != expected:
        raise FlexBenchError(f"{path}: content does not match the hash recorded when the dataset was prepared "
                             f"(edited, or re-prepared while in use); {_redo(root, meta)}")
    return data
