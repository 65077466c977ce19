"""docs/ADD_A_RANKER.md, run as written: a module outside the repository (on PYTHONPATH) with a short factory
is evaluated by ``flexbench eval mod:make --dataset mock``, shows up in ``flexbench leaderboard``, passes
``check_ranker``, exports, and replays through ``run-file`` with the same metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flexbench.results import ResultStore
from flexbench.types import RunKey

DOC = Path(__file__).resolve().parents[1] / "docs" / "ADD_A_RANKER.md"
BIN = Path(sys.executable).parent


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_worked_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, check, api, _ = _blocks("python")
    code = [line for line in module.splitlines() if line.strip()]
    assert len(code) <= 20  # "in 20 lines"
    (tmp_path / "my_ranker.py").write_text(module, encoding="utf-8")
    env = {**os.environ, "FLEXBENCH_DATA": str(tmp_path / "data"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    run, replay = _blocks("bash")[0], _blocks("bash")[1:]
    for line in [*run.splitlines(), *replay[0].splitlines(), *replay[1].splitlines()]:
        proc = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"

    boards = json.loads((tmp_path / "boards.json").read_text())
    interest = next(b for b in boards["boards"] if b["need"] == "interest")
    mine = {r["ranker"]: r for r in interest["runs"]}
    assert mine["topic-overlap"]["kind"] == "external" and mine["topic-overlap"]["complete"]
    assert "| topic-overlap | external |" in (tmp_path / "boards" / "mock.md").read_text()
    store = ResultStore(tmp_path / "data" / "results")
    replayed = store.load_run(RunKey("topic-overlap-replayed", "mock", "interest"))
    assert dict(replayed.metrics) == mine["topic-overlap"]["metrics"]  # exported, replayed: the same numbers
    assert {p.name for p in (tmp_path / "exports").iterdir()} >= {"mock.interest.test.topic-overlap.run",
                                                                  "mock.interest.test.qrels", "metrics.parquet"}

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FLEXBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(check, "ADD_A_RANKER.md:check", "exec"), namespace)  # noqa: S102 - the doc's own code
    assert namespace["report"].name == "topic-overlap" and namespace["report"].needs == ("interest", "novelty", "trend")
    exec(compile(api, "ADD_A_RANKER.md:api", "exec"), namespace)  # noqa: S102
    assert set(namespace["frame"]["ranker"]) >= {"topic-overlap", "topic-overlap-replayed"}
