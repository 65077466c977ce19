"""Inter-process locks on runs and prepared datasets, and the atomic swap of a prepared directory.

A :class:`FileLock` is an advisory :func:`fcntl.flock` lock on a small file that
also records its holder (``{"pid", "what", "command", "started"}``), so that a
refused writer can say who holds it::

    run random on kuairec/interest/test in progress (pid 4242: flexbench eval random ...)

The kernel releases a ``flock`` when its holder exits, however it exits (also
``kill -9``), so a lock is never stale in the kernel's sense. What can be stale
is the holder record: a lock file that still names a process but whose lock is
free was left by a holder that died before it could clear the record; the next
holder takes it over and reports that with ``on_stale`` (the run it left is
resumed, the prepare it left is redone). Lock files stay in place when
released (empty): deleting a lock file while another process waits on it would
let two processes hold "the same" lock on two inodes.

Where the locks live:

* a run: ``<results>/<dataset>/<need>/<split>/<ranker>.lock`` beside its
  ``.json``/``.jsonl`` (held from the compatibility check to the final aggregate);
* a prepared dataset: ``<prepared>/.<name>.lock`` (exclusive while preparing,
  shared while a reader opens the directory).

:func:`replace_dir` moves a finished temporary directory into place with two
renames in the same parent; readers hold the shared dataset lock while they
open, so no reader sees the moment between the renames. A prepare marker
(``<prepared>/.<name>.preparing``, :func:`write_marker`) lives from the start of
a prepare to its end; one found by a reader (who holds the shared lock, so the
preparer is gone) means the prepare was killed, and the reader refuses the
dataset with the command to rerun instead of using another source.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError

Note = Callable[[str], None]


class LockHeld(FlexBenchError):
    """Another live process holds the lock; the message names it and its pid."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(path: Path) -> dict[str, Any] | None:
    """The holder record in lock file ``path`` (``None`` when empty, missing or unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        record = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def describe(holder: dict[str, Any] | None) -> str:
    """``pid N: command`` of a holder record, or ``unknown pid``."""
    if holder is None:
        return "unknown pid"
    command = holder.get("command")
    return f"pid {holder['pid']}" + (f": {command}" if command else "")


class FileLock:
    """An exclusive or shared ``flock`` on ``path`` with a holder record (module docstring)."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def _take(self, mode: int, *, wait: bool, on_wait: Note | None) -> int:
        fd = self._open()
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(self.path)
            if not wait:
                os.close(fd)
                raise LockHeld(f"{self.what} in progress ({describe(holder)}); wait for it to finish "
                               f"(lock {self.path})") from None
            (on_wait or _stderr)(f"waiting for {self.what} ({describe(holder)}) to finish")
            fcntl.flock(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def acquire(self, *, wait: bool = False, on_wait: Note | None = None, on_stale: Note | None = None) -> None:
        """Take the lock exclusively and record this process as holder.

        Busy: raise :class:`LockHeld` naming the holder, or wait (``wait``,
        saying so through ``on_wait``). A record left by a dead holder is taken
        over and reported through ``on_stale``.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        fd = self._take(fcntl.LOCK_EX, wait=wait, on_wait=on_wait)
        previous = read_holder(self.path)
        if previous is not None and previous["pid"] != os.getpid():
            state = "no longer running" if not pid_alive(previous["pid"]) else "running but no longer holding it"
            (on_stale or _stderr)(f"took over the lock of {self.what} from pid {previous['pid']} "
                                  f"({state}; it was interrupted)")
        record = {"pid": os.getpid(), "what": self.what, "command": " ".join(sys.argv) or None,
                  "started": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def acquire_shared(self, *, on_wait: Note | None = None) -> None:
        """Take the lock shared (readers), waiting while an exclusive holder works."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        self._fd = self._take(fcntl.LOCK_SH, wait=True, on_wait=on_wait)

    def release(self, *, clear: bool = True) -> None:
        """Clear the holder record (exclusive holders) and release the lock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if clear:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self, *, wait: bool = False, on_wait: Note | None = None,
                  on_stale: Note | None = None) -> Iterator[FileLock]:
        """``with lock.exclusive(): ...`` (see :meth:`acquire`)."""
        self.acquire(wait=wait, on_wait=on_wait, on_stale=on_stale)
        try:
            yield self
        finally:
            self.release()

    @contextlib.contextmanager
    def shared(self, *, on_wait: Note | None = None) -> Iterator[FileLock]:
        """``with lock.shared(): ...`` (see :meth:`acquire_shared`)."""
        try:
            self.acquire_shared(on_wait=on_wait)
        except PermissionError:  # a read-only data root: nobody can prepare there either
            yield self
            return
        try:
            yield self
        finally:
            self.release(clear=False)


def dataset_lock(root: Path, name: str) -> FileLock:
    """The lock of prepared dataset ``name`` under ``root`` (``<root>/.<name>.lock``)."""
    return FileLock(Path(root) / f".{name}.lock", f"prepare of dataset {name!r}")


def fsync_dir(path: Path) -> None:
    """Make renames inside directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move finished directory ``tmp`` to ``final`` (same parent), replacing what is there.

    ``final`` is renamed aside, ``tmp`` renamed in, the parent fsynced and the
    old copy removed. Callers hold the exclusive dataset lock; readers take the
    shared lock before looking, so none sees ``final`` missing in between.
    """
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(root: Path, name: str) -> None:
    """Delete temporary and set-aside copies of ``name`` left by interrupted prepares (hold the lock)."""
    for path in Path(root).glob(f".{name}.*-*"):
        if path.is_dir() and (".tmp-" in path.name or ".old-" in path.name):
            shutil.rmtree(path, ignore_errors=True)


def marker_path(root: Path, name: str) -> Path:
    """``<root>/.<name>.preparing``: present from the start of a prepare until it succeeded or failed cleanly."""
    return Path(root) / f".{name}.preparing"


def write_marker(root: Path, name: str, record: dict[str, Any]) -> None:
    """Record that a prepare of ``name`` started (``record``: source, sample, command), durably."""
    path = marker_path(root, name)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **record}), encoding="utf-8")
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_marker(root: Path, name: str) -> dict[str, Any] | None:
    """The marker of an unfinished prepare of ``name`` (``{}`` if unreadable), or ``None``."""
    path = marker_path(root, name)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def clear_marker(root: Path, name: str) -> None:
    """Remove the marker of ``name`` (its prepare finished, or failed leaving the old dataset untouched)."""
    marker_path(root, name).unlink(missing_ok=True)
