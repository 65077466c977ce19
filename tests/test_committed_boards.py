"""Committed boards come from committed code: writing the checkout's leaderboards/ from a dirty tree is refused
(or, with --allow-dirty, written under a banner); runs made from uncommitted code show +dirty on the boards."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexbench.cli import app
from flexbench.leaderboard.committed import DirtyTree, check_committed_output, dirty_runs, is_committed_target
from flexbench.results import ResultStore, record_to_json
from flexbench.types import InstanceRecord, RunKey, RunResult

runner = CliRunner()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A clean git checkout with a tracked source file and a committed leaderboards/ folder."""
    root = tmp_path / "repo"
    (root / "leaderboards").mkdir(parents=True)
    (root / "code.py").write_text("x = 1\n")
    (root / "leaderboards" / "mock.md").write_text("old\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return root


def _store(root: Path, dirty: bool) -> ResultStore:
    store = ResultStore(root)
    key = RunKey("random", "mock", "interest", "test")
    metrics = {m: 0.5 for m in ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "precision@5", "mrr@5")}
    records = [InstanceRecord(f"i{i}", None, None, True, ("a",), ("a",), 0, 0, 0, metrics) for i in range(3)]
    jsonl = store.run_paths(key)[0]
    jsonl.parent.mkdir(parents=True)
    jsonl.write_text("".join(json.dumps(record_to_json(r)) + "\n" for r in records))
    rates = {"invalid_rate": 0.0, "duplicate_rate": 0.0, "parse_failure_rate": 0.0, "pad_rate": 0.0}
    code = {"package": "0.1.0", "git_commit": "d37dbd69eb8b1234", "dirty": dirty}
    store.write_aggregate(RunResult(key, 3, metrics, rates, {"code_version": code, "data_fingerprint": "fp"}))
    return store


def test_only_the_checkouts_leaderboards_is_guarded(repo: Path, tmp_path: Path) -> None:
    assert is_committed_target(repo / "leaderboards", repo) and is_committed_target(repo / "leaderboards" / "x", repo)
    assert not is_committed_target(tmp_path / "leaderboards", repo) and not is_committed_target(repo, repo)
    (repo / "code.py").write_text("x = 2\n")  # dirty, but another directory is never checked
    assert check_committed_output(tmp_path / "site", [], repo=repo) is None


def test_dirty_tree_is_refused_and_allow_dirty_writes_a_banner(repo: Path, tmp_path: Path) -> None:
    store = _store(tmp_path / "results", dirty=False)
    assert check_committed_output(repo / "leaderboards", store.load_runs(), repo=repo) is None  # clean
    (repo / "leaderboards" / "mock.md").write_text("regenerated\n")  # the output itself does not count
    assert check_committed_output(repo / "leaderboards", store.load_runs(), repo=repo) is None
    (repo / "code.py").write_text("x = 2\n")
    with pytest.raises(DirtyTree, match=r"uncommitted change\(s\) \(code.py\).*--allow-dirty"):
        check_committed_output(repo / "leaderboards", store.load_runs(), repo=repo)
    banner = check_committed_output(repo / "leaderboards", store.load_runs(), repo=repo, allow_dirty=True)
    assert banner.startswith("Warning: written with --allow-dirty") and "code.py" in banner


def test_runs_from_uncommitted_code_are_refused(repo: Path, tmp_path: Path) -> None:
    runs = _store(tmp_path / "results", dirty=True).load_runs()
    assert dirty_runs(runs) == ["random on mock/interest/test (d37dbd69eb8b+dirty)"]
    with pytest.raises(DirtyTree, match=r"1 stored run\(s\) were made from uncommitted code"):
        check_committed_output(repo / "leaderboards", runs, repo=repo)


def test_cli_refuses_then_marks(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path / "results", dirty=True)
    monkeypatch.setattr("flexbench.leaderboard.committed.repo_root", lambda: repo)
    out = repo / "leaderboards"
    args = ["leaderboard", "--results", str(store.root), "--markdown-dir", str(out)]
    refused = runner.invoke(app, args)
    assert refused.exit_code != 0 and isinstance(refused.exception, DirtyTree)
    assert (out / "mock.md").read_text() == "old\n"  # nothing written
    marked = runner.invoke(app, [*args, "--allow-dirty"])
    assert marked.exit_code == 0, marked.output
    text = (out / "mock.md").read_text()
    assert text.splitlines()[2].startswith("> **Warning: written with --allow-dirty")
    assert "code: d37dbd69eb8b+dirty" in text  # the run's code version is on the board's protocol card
    tables = runner.invoke(app, ["tables", "--results", str(store.root), "--out", str(out),
                                 "--checkpoints", str(tmp_path / "none")])
    assert tables.exit_code != 0 and isinstance(tables.exception, DirtyTree)
    ok = runner.invoke(app, ["tables", "--results", str(store.root), "--out", str(out), "--allow-dirty",
                             "--checkpoints", str(tmp_path / "none")])
    assert ok.exit_code == 0, ok.output
    assert (out / "table1.md").read_text().startswith("> **Warning: written with --allow-dirty")
    assert 'class="banner">Warning: written with --allow-dirty' in (out / "index.html").read_text()


def _run(ranker: str, n: int) -> RunResult:
    metrics = {m: 0.5 for m in ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "precision@5", "mrr@5")}
    return RunResult(RunKey(ranker, "kuairec", "interest"), n, metrics, {},
                     {"config": {"ranker": ranker}, "n_available": 130})


def test_committed_boards_leave_out_llm_runs_on_few_instances() -> None:
    """LLM rows (zero-shot, trained) need >= 100 instances on a committed board; classic rows always stay."""
    from flexbench.leaderboard.committed import MIN_MODEL_INSTANCES, CommittedStore, committed_runs

    runs = [_run("random", 130), _run("popularity", 2), _run("zero-shot", 2), _run("flexrec", 2),
            _run("zero-shot-constrained", MIN_MODEL_INSTANCES)]
    kept, note = committed_runs(runs)
    assert [r.key.ranker for r in kept] == ["random", "popularity", "zero-shot-constrained"]
    assert note is not None and "zero-shot on kuairec/interest (2)" in note and "flexrec" in note
    assert committed_runs(kept)[1] is None

    class Store:
        def load_runs(self) -> list[RunResult]:
            return runs

        def load_run(self, key: RunKey) -> RunResult | None:
            return next((r for r in runs if r.key == key), None)

        def load_records(self, key: RunKey) -> list[InstanceRecord]:
            return [InstanceRecord("i0", None, None, True, ("a",), ("a",), 0, 0, 0, {})]

    view = CommittedStore(Store())
    assert len(view.load_runs()) == 3 and view.load_run(runs[2].key) is None
    assert view.load_records(runs[2].key) == [] and len(view.load_records(runs[0].key)) == 1
