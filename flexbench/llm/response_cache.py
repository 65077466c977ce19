"""An on-disk cache of API responses: one JSON file per request, written atomically.

The key is ``sha256`` of the canonical JSON (sorted keys, no whitespace) of the
request fields that determine the answer: model, messages and sampling
settings. Nothing else goes into the key or the file: in particular no API key,
base URL credentials or headers. Each response is written to a temporary file
in the same directory and renamed into place (``os.replace`` is atomic on POSIX),
so a run killed at any moment leaves either a complete entry or none, and a rerun
sends only the requests that have no entry.

Layout: ``<root>/<key[:2]>/<key>.json`` holding ``{"request": ..., "response": ...}``.

**Any string is storable.** An API may answer text that is not valid Unicode (a
lone surrogate such as ``"\\ud800"``, which UTF-8 cannot encode). Entries are
written as ASCII JSON, where such a code point is the escape ``\\ud800`` and
reads back as the same string (as JSON defines, a high and a low surrogate in a
row read back joined into one character); the key hashes the UTF-8 bytes with
``surrogatepass`` (identical bytes, hence identical keys, for all valid text).
:func:`valid_unicode` gives the text that is passed on: lone surrogates become
U+FFFD, so what is stored downstream (run records) is always valid UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def request_key(fields: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON of ``fields``."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def valid_unicode(text: str) -> str:
    """``text`` with surrogate pairs joined and every lone surrogate replaced by U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class ResponseCache:
    """Read and write cached responses under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """File of ``key``."""
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached response of ``key``, or ``None``; a corrupt file counts as missing."""
        path = self.path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["response"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):  # ValueError: bad JSON or bytes
            return None

    def put(self, key: str, request: Mapping[str, Any], response: Mapping[str, Any]) -> Path:
        """Store ``response`` (with the ``request`` fields for audit) atomically."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"request": dict(request), "response": dict(response)},
                             ensure_ascii=True, sort_keys=True)  # escapes lone surrogates too
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
