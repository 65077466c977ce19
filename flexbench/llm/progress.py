"""A transient rich progress bar that steps aside when another live display is active."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Advance(Protocol):
    def __call__(self, steps: int = 1) -> None: ...


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Advance]:
    """Yield ``advance(steps)``; draws a bar on stderr when ``enabled`` and nothing else is live."""
    if not enabled or total <= 0:
        yield lambda steps=1: None
        return
    from rich.errors import LiveError
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), transient=True)
    try:
        bar.start()
    except LiveError:  # the caller (e.g. the harness) already shows a live display
        yield lambda steps=1: None
        return
    task: Any = bar.add_task(description, total=total)
    try:
        yield lambda steps=1: bar.advance(task, steps)
    finally:
        bar.stop()
