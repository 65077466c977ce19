"""CLI: ``flexbench rankers``, ``eval``, ``eval --all``, ``leaderboard``; one-line errors; kill -9 and resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexbench import ranker as ranker_module
from flexbench.cli import app, main
from flexbench.ranker import RankerEntry, RankerKind
from flexbench.results import ResultStore
from flexbench.types import RunKey

runner = CliRunner()


def test_rankers_lists_the_registry() -> None:
    result = runner.invoke(app, ["rankers"], terminal_width=200)
    assert result.exit_code == 0
    for name, entry in ranker_module.REGISTRY.items():
        assert name in result.output and entry.kind.value in result.output


def test_eval_stores_a_run_and_leaderboard_renders_it(data_root: Path, tmp_path: Path) -> None:
    ignored = runner.invoke(app, ["eval", "oracle-trend", "--dataset", "mock", "--need", "trend", "--set", "note=hi"])
    assert ignored.exit_code != 0 and "does not take option 'note'" in str(ignored.exception)
    result = runner.invoke(app, ["eval", "oracle-trend", "--dataset", "mock", "--need", "trend", "--limit", "5",
                                 "--set", "label=trend-oracle"])
    assert result.exit_code == 0, result.output
    assert "ndcg@30=1.0000" in result.output
    run = ResultStore().load_run(RunKey("trend-oracle", "mock", "trend", "test"))
    assert run is not None and run.complete and run.n_instances == 5
    assert run.provenance["config"]["options"] == {"label": "trend-oracle"}
    assert run.provenance["limit"] == 5 and run.provenance["data_fingerprint"]
    board = runner.invoke(app, ["leaderboard", "--markdown-dir", str(tmp_path / "lb")])
    assert board.exit_code == 0, board.output
    assert "trend-oracle" in board.output and (tmp_path / "lb" / "mock.md").exists()


def test_eval_without_need_runs_every_need(data_root: Path) -> None:
    result = runner.invoke(app, ["eval", "candidate-order", "--dataset", "mock", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert {r.key.need for r in ResultStore().load_runs()} == {"interest", "novelty", "trend"}


def test_eval_all_skips_with_reasons(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keep = ("random", "oracle-interest", "oracle-esci", "flexrec", "rec-r1")
    table = {n: ranker_module.REGISTRY[n] for n in keep}
    table["llm-ish"] = RankerEntry("llm-ish", "baselines.reference:RandomRanker", RankerKind.ZERO_SHOT, "limited")
    monkeypatch.setattr(ranker_module, "REGISTRY", table)
    monkeypatch.setattr("flexbench.suite.REGISTRY", table)
    typo = runner.invoke(app, ["eval", "--all", "--datasets", "mock,nope"], terminal_width=200)
    assert typo.exit_code != 0 and "unknown dataset 'nope'" in str(typo.exception)  # before anything runs
    assert ResultStore().load_runs() == []
    result = runner.invoke(app, ["eval", "--all", "--datasets", "mock", "--llm-limit", "3",
                                 "--markdown-dir", str(tmp_path / "lb")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "skip oracle-esci on mock: dataset 'mock' has no 'esci' labels" in result.output
    assert "skip 2 trained rankers on mock (flexrec, rec-r1); e.g. flexrec: no checkpoint at" in result.output
    runs = {(r.key.ranker, r.key.need): r for r in ResultStore().load_runs()}
    assert len(runs) == 9 and runs["llm-ish", "novelty"].n_instances == 3
    assert runs["llm-ish", "novelty"].provenance["limit"] == 3 and runs["random", "trend"].n_instances == 12
    assert "3/12" in (tmp_path / "lb" / "mock.md").read_text()
    again = runner.invoke(app, ["eval", "--all", "--datasets", "mock", "--llm-limit", "3",
                                "--markdown-dir", str(tmp_path / "lb")], terminal_width=200)
    assert again.exit_code == 0 and "done random on mock: stored runs are complete" in again.output
    assert "done llm-ish on mock" in again.output


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "rnadom", "--dataset", "mock"], "unknown ranker 'rnadom'. Did you mean 'random'?"),
    (["eval", "random", "--dataset", "movielens"], "unknown dataset 'movielens'"),
    (["eval", "random", "--dataset", "mock", "--need", "esci"], "dataset 'mock' has no need 'esci'"),
    (["eval", "random", "--dataset", "mock", "--need", "noveltyy"], "unknown need 'noveltyy'"),
    (["eval", "random", "--dataset", "mock", "--split", "dev"], "unknown split 'dev'"),
    (["eval", "--dataset", "mock"], "usage: flexbench eval RANKER"),
])
def test_user_errors_are_one_line_and_exit_2(argv: list[str], message: str, data_root: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["flexbench", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_html_without_generator_is_a_clear_error(data_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flexbench.tables.html", None)  # import raises ModuleNotFoundError
    result = runner.invoke(app, ["leaderboard", "--markdown-dir", str(tmp_path), "--html", str(tmp_path / "h")])
    assert result.exit_code != 0 and "HTML site generator is not installed" in str(result.exception)


# ---- kill -9 in the middle of `flexbench eval`, then rerun ---------------------------------------------

SCRIPT = textwrap.dedent("""
    import os, sys, time
    from baselines.reference import RandomRanker
    from flexbench import ranker as R

    class SlowRandom(RandomRanker):  # test-only: registered in this process, never in REGISTRY's source
        def rank(self, instances, need):
            time.sleep(float(os.environ.get("FLEXBENCH_TEST_DELAY", "0")))
            return super().rank(instances, need)

    R.REGISTRY["slow-random"] = R.RankerEntry("slow-random", "__main__:SlowRandom", R.RankerKind.REFERENCE, "test")
    sys.argv = ["flexbench", "eval", "slow-random", "--dataset", "mock", "--need", "novelty",
                "--split", "train", "--batch-size", "4"]
    from flexbench.cli import main
    main()
""")
KEY = RunKey("slow-random", "mock", "novelty", "train")


def _run(script: Path, root: Path, delay: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FLEXBENCH_DATA": str(root), "FLEXBENCH_TEST_DELAY": str(delay)}
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)],
                         ids=["kill-9", "ctrl-c"])
def test_interrupt_then_rerun_gives_the_uninterrupted_aggregate(tmp_path: Path, sig: int, code: int) -> None:
    script = tmp_path / "slow_eval.py"
    script.write_text(SCRIPT)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _run(script, whole, 0).wait(timeout=120) == 0
    shutil.copytree(whole / "prepared", cut / "prepared")  # same data files, same fingerprint

    jsonl = ResultStore(cut / "results").run_paths(KEY)[0]
    proc = _run(script, cut, 0.25)
    deadline = time.monotonic() + 60
    while len(_lines(jsonl)) < 12 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode == code, proc.stderr.read().decode()
    assert 12 <= len(_lines(jsonl)) < 96
    assert not ResultStore(cut / "results").load_run(KEY).complete

    rerun = _run(script, cut, 0)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read().decode()
    expected = json.loads(ResultStore(whole / "results").run_paths(KEY)[1].read_text())
    got = json.loads(ResultStore(cut / "results").run_paths(KEY)[1].read_text())
    for field in ("n_instances", "metrics", "rates", "complete"):
        assert got[field] == expected[field], field
    assert got["provenance"]["n_resumed"] >= 12
    ids = [json.loads(line)["instance_id"] for line in _lines(jsonl)]
    assert len(ids) == len(set(ids)) == 96


def test_cli_llm_limit_default_is_the_suite_default() -> None:
    import typer

    from flexbench.suite import DEFAULT_LLM_LIMIT

    command = typer.main.get_command(app).commands["eval"]  # type: ignore[attr-defined]
    assert {p.name: p.default for p in command.params}["llm_limit"] == DEFAULT_LLM_LIMIT
