"""``flexbench data fetch``: download official archives with resume, checksum and unpacking.

Each file is streamed into ``<name>.part``; an interrupted download resumes
with an HTTP ``Range`` request from the bytes already there (a server that
ignores ``Range`` restarts it from zero). A finished file is checksummed
before it is renamed into place: a mismatch deletes the ``.part`` and raises,
so a corrupted file is never used. Archives are unpacked next to it.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from flexbench.datasets.checksums import SOURCES, Remote
from flexbench.errors import FlexBenchError

CHUNK = 1 << 20
TIMEOUT_S = 60


class ChecksumMismatch(FlexBenchError):
    """A downloaded file does not have the published checksum."""


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of ``path``."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(remote: Remote, target_dir: Path, *, verify: bool = True, progress: bool = True) -> Path:
    """Download ``remote`` into ``target_dir`` (resuming a ``.part``) and verify it; return the file."""
    target_dir.mkdir(parents=True, exist_ok=True)
    final = target_dir / remote.filename
    if final.exists() and (not verify or _matches(final, remote)):
        return final
    part = final.with_name(final.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(remote.url, headers={"User-Agent": "flexbench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:          # the .part is already complete
            response = None
        else:
            raise FlexBenchError(f"download of {remote.url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise FlexBenchError(f"cannot reach {remote.url} ({err}); check the network and rerun: "
                             f"the download resumes from {part.name}") from None
    if response is not None:
        with response:
            resumed = have and response.status == 206
            if not resumed:
                have = 0
            total = response.length + have if response.length is not None else remote.size
            _stream(response, part, "ab" if resumed else "wb", have, total, remote.filename, progress)
    if verify and remote.digest is not None:
        actual = file_digest(part, remote.algorithm or "sha256")
        if actual != remote.digest:
            part.unlink()
            raise ChecksumMismatch(f"{remote.filename}: {remote.algorithm} is {actual}, expected {remote.digest}; "
                                   f"the file is corrupted or was changed upstream and was deleted. Rerun "
                                   f"`flexbench data fetch` (or pass --no-verify after checking the source)")
    part.replace(final)
    return final


def _stream(response, part: Path, mode: str, have: int, total: int | None, name: str, progress: bool) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar, part.open(mode) as out:
        task = bar.add_task(name, total=total, completed=have)
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.advance(task, len(block))
        except (OSError, TimeoutError, http.client.HTTPException) as err:
            out.flush()
            raise FlexBenchError(f"download of {name} interrupted ({err}); rerun to resume from "
                                 f"{part.stat().st_size} bytes") from None
    if total is not None and part.stat().st_size < total:
        raise FlexBenchError(f"download of {name} interrupted at {part.stat().st_size} of {total} bytes "
                             f"(connection closed); rerun to resume")


def _matches(path: Path, remote: Remote) -> bool:
    return remote.digest is None or file_digest(path, remote.algorithm or "sha256") == remote.digest


def unpack(archive: Path, target_dir: Path) -> list[Path]:
    """Extract a zip archive into ``target_dir``, refusing paths that escape it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            root = target_dir.resolve()
            for member in zf.namelist():
                if not (target_dir / member).resolve().is_relative_to(root):
                    raise FlexBenchError(f"{archive}: member {member!r} would be written outside {target_dir}")
            zf.extractall(target_dir)
            return sorted({target_dir / m.split("/")[0] for m in zf.namelist() if m.strip("/")})
    except zipfile.BadZipFile:
        raise FlexBenchError(f"{archive} is not a valid zip file; delete it and fetch again") from None


def fetch(dataset: str, target_dir: Path, *, verify: bool = True, progress: bool = True,
          base_url: str | None = None) -> list[Path]:
    """Download (and unpack) every file of ``dataset``; return the paths of what was produced.

    ``base_url`` replaces the directory part of each URL (mirrors, tests).
    """
    if dataset not in SOURCES:
        raise FlexBenchError(f"unknown dataset {dataset!r}; choose one of {', '.join(SOURCES)}")
    produced: list[Path] = []
    for remote in _with_base(SOURCES[dataset], base_url):
        path = download(remote, Path(target_dir), verify=verify, progress=progress)
        produced += unpack(path, Path(target_dir)) if remote.unpack else [path]
    return produced


def _with_base(remotes: Sequence[Remote], base_url: str | None) -> list[Remote]:
    if base_url is None:
        return list(remotes)
    return [replace(r, url=base_url.rstrip("/") + "/" + r.filename) for r in remotes]
