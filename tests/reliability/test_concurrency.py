"""Concurrent writers with real processes (issue 16, item 1): runs and prepares are locked, never mixed.

Each test starts ``python -m flexbench`` (or a small holder script) in
subprocesses on the mock dataset or a bundled sample prepared with the hash
encoder and few instances, so the whole file stays within seconds per test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flexbench.catalog import open_dataset
from flexbench.datasets.prepare import PrepareConfig, prepare
from flexbench.errors import FlexBenchError
from flexbench.locks import dataset_lock
from flexbench.results import ResultStore
from flexbench.types import RunKey

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "ml-1m"
FEW = ["--encoder", "hash", "--n-train", "40", "--n-valid", "10", "--n-test", "10"]
KEY = RunKey("random", "mock", "interest", "train")


def cli(data: Path, *args: str) -> subprocess.Popen:
    """Start ``flexbench ARGS`` with ``$FLEXBENCH_DATA=data``."""
    env = {**os.environ, "FLEXBENCH_DATA": str(data), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "flexbench", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, " ".join(out.split())


def holder(data: Path, code: str) -> subprocess.Popen:
    """A Python process that runs ``code`` (holding a lock), prints ``ready`` and sleeps until killed."""
    script = textwrap.dedent(code) + "\nprint('ready', flush=True)\nimport time\ntime.sleep(120)\n"
    env = {**os.environ, "FLEXBENCH_DATA": str(data)}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, text=True, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def eval_args(seed: int, *extra: str) -> list[str]:
    return ["eval", "random", "--dataset", "mock", "--need", "interest", "--split", "train", "--batch-size", "1",
            "--seed", str(seed), *extra]


def _run_in_process(data: Path, seed: int, overwrite: bool = False) -> None:
    from flexbench.suite import EvalRequest, run_eval

    request = EvalRequest("random", "mock", "interest", split="train", seed=seed, batch_size=1, overwrite=overwrite)
    run_eval(request, store=ResultStore(data / "results"), dataset=open_dataset("mock", data / "prepared"))


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[dict]]:
    """The records of uninterrupted, sequential ``--seed 0`` and ``--seed 1`` runs (what the CLI runs)."""
    out = {}
    for seed in (0, 1):
        data = tmp_path_factory.mktemp(f"ref{seed}")
        _run_in_process(data, seed)
        out[seed] = [json.loads(line) for line in ResultStore(data / "results").run_paths(KEY)[0].open()]
    assert [r["repaired_ids"] for r in out[0]] != [r["repaired_ids"] for r in out[1]]
    return out


def test_concurrent_runs_never_mix_nor_repeat_records(references: dict[int, list[dict]], tmp_path: Path) -> None:
    """The reproduction of the issue (``--seed 0`` and ``--seed 1`` at once) plus a second ``--seed 0``."""
    procs = [cli(tmp_path, *eval_args(seed)) for seed in (0, 1, 0)]
    results = [finish(p) for p in procs]
    assert sum(code == 0 for code, _ in results) >= 1
    for code, text in results:  # a loser is refused: in progress, or another config is stored
        assert code == 0 or "in progress (pid" in text or "differs in seed" in text, text
    store = ResultStore(tmp_path / "results")
    run = store.load_run(KEY)  # verified against its records
    assert run is not None and run.complete and run.n_instances == 96
    stored = [json.loads(line) for line in store.run_paths(KEY)[0].open()]
    assert stored == references[run.provenance["seed"]]  # each record once, all from the seed the aggregate names


def test_second_writer_and_overwrite_are_refused_while_a_run_holds_the_lock(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run in progress (another process inside ``ResultStore.writer``) blocks a second run and ``--overwrite``."""
    _run_in_process(tmp_path, 0)
    jsonl = ResultStore(tmp_path / "results").run_paths(KEY)[0]
    before = jsonl.read_bytes()
    run = holder(tmp_path, f"""
        from flexbench.results import ResultStore
        from flexbench.types import RunKey
        lock = ResultStore({str(tmp_path / "results")!r}).lock(RunKey("random", "mock", "interest", "train"))
        lock.acquire()
    """)
    try:
        held = rf"run random on mock/interest/train in progress \(pid {run.pid}"
        with pytest.raises(FlexBenchError, match=held):
            _run_in_process(tmp_path, 0)
        with pytest.raises(FlexBenchError, match=held + r".*--overwrite does not discard a run in progress"):
            _run_in_process(tmp_path, 0, overwrite=True)
        assert jsonl.read_bytes() == before  # the running run's records are untouched
    finally:
        run.kill()
        run.wait()
    capsys.readouterr()
    _run_in_process(tmp_path, 0)  # the killed holder's lock is taken over, with a note
    assert f"took over the lock of run random on mock/interest/train from pid {run.pid}" in capsys.readouterr().err


def _reference_files(tmp_path: Path, seed: int) -> dict:
    cfg = PrepareConfig("ml-1m", encoder="hash", n_train=40, n_valid=10, n_test=10, seed=seed)
    return prepare(cfg, SAMPLE, tmp_path / f"ref{seed}", cache=tmp_path / "emb").meta["files"]


def test_concurrent_prepares_with_different_seeds_never_leave_mixed_files(tmp_path: Path) -> None:
    refs = {seed: _reference_files(tmp_path, seed) for seed in (0, 1)}
    assert refs[0] != refs[1]
    out = tmp_path / "prepared"
    procs = [cli(tmp_path, "data", "prepare", "ml-1m", "--raw-dir", str(SAMPLE), "--seed", str(seed),
                 "--out-root", str(out), *FEW) for seed in (0, 1)]
    results = [finish(p) for p in procs]
    assert all(code == 0 or "prepare of dataset 'ml-1m' in progress (pid" in text for code, text in results), results
    ds = open_dataset("ml-1m", out, auto_prepare=False)
    assert ds.meta["files"] == refs[ds.meta["config"]["seed"]]
    ds.instances(), ds.labels("interest")  # every file verified against its recorded hash
    assert sorted(p.name for p in out.iterdir()) == [".ml-1m.lock", "ml-1m"]


def test_prepare_is_refused_and_a_reader_waits_while_another_process_prepares(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prepared"
    cfg = PrepareConfig("ml-1m", encoder="hash", n_train=40, n_valid=10, n_test=10)
    prepare(cfg, SAMPLE, out, cache=tmp_path / "emb")
    lock = holder(tmp_path, f"""
        from flexbench.locks import dataset_lock
        lock = dataset_lock({str(out)!r}, "ml-1m")
        lock.acquire()
        import threading, os, time
        threading.Thread(target=lambda: (time.sleep(2), lock.release(), os._exit(0)), daemon=True).start()
    """)
    with pytest.raises(FlexBenchError, match=rf"prepare of dataset 'ml-1m' in progress \(pid {lock.pid}"):
        prepare(cfg, SAMPLE, out, cache=tmp_path / "emb")
    capsys.readouterr()
    started = time.monotonic()
    assert open_dataset("ml-1m", out).instances("test")  # blocks on the shared lock until the holder is done
    assert time.monotonic() - started > 0.5 and lock.wait(timeout=30) == 0
    assert f"waiting for prepare of dataset 'ml-1m' (pid {lock.pid}" in capsys.readouterr().err


def test_killed_reprepare_of_a_custom_raw_dir_is_an_error_not_the_sample(tmp_path: Path) -> None:
    """The issue's case: kill -9 a re-prepare from --raw-dir; the next eval must not prepare the bundled sample."""
    out = tmp_path / "prepared"
    args = ["data", "prepare", "ml-1m", "--raw-dir", str(SAMPLE), "--out-root", str(out), *FEW]
    prepare(PrepareConfig("ml-1m", encoder="hash", n_train=40, n_valid=10, n_test=10), SAMPLE, out,
            cache=tmp_path / "emb")
    before = json.loads((out / "ml-1m" / "meta.json").read_text())["files"]
    proc = cli(tmp_path, *args)
    marker = out / ".ml-1m.preparing"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists()
    with pytest.raises(FlexBenchError, match=r"last prepare of dataset 'ml-1m'.*did not finish; run "
                                             r"`flexbench data prepare ml-1m --raw-dir .*ml-1m --encoder hash"):
        open_dataset("ml-1m", out)  # auto_prepare on: still no silent switch to the sample
    assert json.loads((out / "ml-1m" / "meta.json").read_text())["files"] == before  # old data intact
    prepare(PrepareConfig("ml-1m", encoder="hash", n_train=40, n_valid=10, n_test=10), SAMPLE, out,
            cache=tmp_path / "emb")  # the rerun clears the marker and its leftovers
    assert open_dataset("ml-1m", out).meta["config"]["source"] == str(SAMPLE)
    assert sorted(p.name for p in out.iterdir()) == [".ml-1m.lock", "ml-1m"]


def test_dataset_lock_is_exclusive_within_a_process(tmp_path: Path) -> None:
    first = dataset_lock(tmp_path, "x")
    with first.exclusive(), pytest.raises(FlexBenchError, match=rf"in progress \(pid {os.getpid()}"):
        dataset_lock(tmp_path, "x").acquire()
