"""``benchmarks/device_check.py --tiny``: every stage that can run on CPU passes, one line and one JSON record each."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_device_check_tiny_runs_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "dc.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--tiny", "--out", str(out),
                           "--workdir", str(tmp_path / "work")], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln[:2] in {f"S{i}" for i in range(6)}]
    assert [ln.split()[0] for ln in lines] == ["S0", "S1", "S2", "S3", "S4", "S5"], done.stdout + done.stderr
    status = {ln.split()[0]: ln.split()[1] for ln in lines}
    assert all(status[s] == "PASS" for s in ("S0", "S1", "S2", "S3", "S4")), done.stdout + done.stderr
    assert status["S5"] in ("PASS", "SKIP")  # SKIP where vLLM is not installed (it says so)
    assert all(ln.split()[2].endswith("s") for ln in lines)
    assert done.returncode == 0
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["stage"] for r in records] == ["S0", "S1", "S2", "S3", "S4", "S5"]
    assert records[1]["figures"]["padded_gap"] <= 1e-4 and records[4]["figures"]["generation_equal"]


def test_a_failing_stage_reports_its_traceback_and_the_run_goes_on(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import device_check

    def broken(args):  # type: ignore[no-untyped-def]
        raise ValueError("boom")

    original = device_check.STAGES["S1"]
    device_check.STAGES["S1"] = broken
    try:
        rec = device_check.run_stage("S1", argparse.Namespace(tiny=True, workdir=tmp_path), 10)
    finally:
        device_check.STAGES["S1"] = original
    assert rec["status"] == "FAIL" and "ValueError: boom" in rec["reason"]
    assert rec["traceback"][-1] == "ValueError: boom"
    assert device_check.line_of(rec).startswith("S1 FAIL ")
