"""Committed boards come from committed code: the guard on writing into the repository's ``leaderboards/``.

Rendering boards or tables into the checkout's own ``leaderboards/`` directory
(the files under version control) is refused when

* the working tree has uncommitted changes to tracked files outside
  ``leaderboards/`` itself (``git status --porcelain --untracked-files=no``), or
* a run on the boards records a code version marked ``+dirty`` (its numbers were
  made by code no one can check out).

``--allow-dirty`` writes anyway, with a warning banner at the top of every file
naming why. Any other output directory is never checked. Outside a git
checkout (an installed package) there is nothing to compare against and
nothing is refused.

Committed boards also carry no thin LLM rows: a run of a zero-shot or trained
ranker on fewer than :data:`MIN_MODEL_INSTANCES` instances (the quick ``eval
--all`` default evaluates 2) is left out of them (:func:`committed_runs`,
:class:`CommittedStore`), and the file says which runs were left out and why.
Classic, reference and oracle rows always cover the whole split. Other output
directories show every run, the ``n`` column saying ``2/130``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from flexbench.errors import FlexBenchError
from flexbench.leaderboard.protocol import code_label
from flexbench.results_view import FilteredStore, ResultSource
from flexbench.types import RunResult

COMMITTED_DIR = "leaderboards"
MIN_MODEL_INSTANCES = 100
MODEL_KINDS = frozenset({"zero-shot", "trained"})  # RankerKind values of LLM rankers


class DirtyTree(FlexBenchError):
    """Refusal to write committed boards from uncommitted code; the message says what to do."""


def repo_root() -> Path | None:
    """The git checkout this FlexBench runs from, or None (an installed package)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / ".git").exists() else None


def is_committed_target(out_dir: Path, repo: Path | None) -> bool:
    """Whether ``out_dir`` is the checkout's ``leaderboards/`` or lies inside it."""
    if repo is None:
        return False
    target, out = (Path(repo) / COMMITTED_DIR).resolve(), Path(out_dir).resolve()
    return out == target or target in out.parents


def tree_changes(repo: Path) -> list[str]:
    """Tracked paths with uncommitted changes, ``leaderboards/`` left out (it is what gets written)."""
    if not shutil.which("git"):
        return []
    cmd = ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--", ".",
           f":(exclude){COMMITTED_DIR}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return ["(git status failed)"]
    return [line[3:] for line in out.splitlines() if line.strip()]


def dirty_runs(runs: Sequence[RunResult]) -> list[str]:
    """``ranker on dataset/need/split (abc123+dirty)`` for every run made from uncommitted code."""
    out = []
    for run in runs:
        label = code_label(run.provenance.get("code_version"))
        if label.endswith("+dirty"):
            out.append(f"{run.key.ranker} on {'/'.join(run.key.path_parts()[:3])} ({label})")
    return out


def _listing(items: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_committed_output(out_dir: Path, runs: Sequence[RunResult], *, allow_dirty: bool = False,
                           repo: Path | None = None, check: bool = True) -> str | None:
    """None when writing ``out_dir`` is fine; the banner text when ``allow_dirty`` lets dirty output through.

    Raises :class:`DirtyTree` (module docstring) otherwise. ``repo`` defaults to
    :func:`repo_root`; ``check=False`` skips the check (``out_dir`` is not the committed one).
    """
    repo = repo_root() if repo is None else Path(repo)
    if not check or not is_committed_target(out_dir, repo):
        return None
    changes, runs_dirty = tree_changes(repo), dirty_runs(runs)
    if not changes and not runs_dirty:
        return None
    reasons = []
    if changes:
        reasons.append(f"the working tree has {len(changes)} uncommitted change(s) ({_listing(changes)})")
    if runs_dirty:
        reasons.append(f"{len(runs_dirty)} stored run(s) were made from uncommitted code ({_listing(runs_dirty)})")
    why = "; ".join(reasons)
    if allow_dirty:
        return (f"Warning: written with --allow-dirty from uncommitted code: {why}. These numbers cannot be "
                f"reproduced from a commit.")
    raise DirtyTree(f"refusing to write {COMMITTED_DIR}/ from uncommitted code: {why}. Commit first and rerun "
                    f"those runs with --overwrite, or pass --allow-dirty to write them under a warning banner.")


def is_thin(run: RunResult, minimum: int = MIN_MODEL_INSTANCES) -> bool:
    """Whether ``run`` is an LLM (zero-shot or trained) run on fewer than ``minimum`` instances."""
    from flexbench.leaderboard.model import kind_of

    return kind_of(run) in MODEL_KINDS and run.n_instances < minimum


def committed_runs(runs: Sequence[RunResult], minimum: int = MIN_MODEL_INSTANCES) -> tuple[list[RunResult], str | None]:
    """The runs a committed board shows, and the note naming those left out (None when none was)."""
    kept = [r for r in runs if not is_thin(r, minimum)]
    thin = [f"{r.key.ranker} on {r.key.dataset}/{r.key.need} ({r.n_instances})" for r in runs if is_thin(r, minimum)]
    if not thin:
        return kept, None
    return kept, (f"Left out: {len(thin)} LLM run(s) on fewer than {minimum} instances ({_listing(thin, 6)}); "
                  f"committed boards show zero-shot and trained rows only on at least {minimum} instances "
                  f"(`flexbench eval RANKER --limit {minimum}` or `eval --all --llm-limit 0`).")


class CommittedStore(FilteredStore):
    """A view of a result store without thin LLM runs (:func:`committed_runs`), for the committed tables."""

    def __init__(self, store: ResultSource, minimum: int = MIN_MODEL_INSTANCES) -> None:
        super().__init__(store, lambda run: not is_thin(run, minimum))
        self.minimum = minimum
