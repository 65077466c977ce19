"""The trainer as 2 "nodes" x 1 process on this machine: ``torchrun --nnodes 2`` on the loopback address, gloo.

The same launch as on two GPU nodes (docs/GPU.md, "Multi-GPU and multi-node"): two
torchrun agents meet at a c10d rendezvous, each starts one process; the run goes
through an FSDP step, a checkpoint, a resume, a sharded save and restore, and a policy built on the meta
device on rank 1 that receives rank 0's weights after sharding.
About a minute on two shared cores: ``slow``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from policy_fixtures import tiny_policy, toy_tokenizer

__all__ = ["toy_tokenizer"]
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_train_checkpoint_and_resume(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tok, out, results = tmp_path / "tok", tmp_path / "out", tmp_path / "results"
    toy_tokenizer.save_pretrained(tok)
    results.mkdir()
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "flexbench-test",
               str(HERE / "node_worker.py"), str(tok), str(out), str(results)]
    nodes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), "\n".join(log[-3000:] for log in logs)
    ranks = [torch.load(results / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert {r["node"] for r in ranks} == {"0", "1"}  # two agents, one process each
    assert all(r["world"] == 2 and r["first_step"] == 1 and r["resumed_step"] == 2 for r in ranks)
    assert all(r["restored_equal"] for r in ranks)
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 2 and state["sharded"]
    assert (out / "sharded" / "checkpoint" / "dcp" / ".metadata").exists()
    assert ranks[0]["full_weights"] is not None
    # rank 1 built its policy on the meta device and received rank 0's weights after sharding
    assert [r["meta_built"] for r in ranks] == [False, True]
    loaded = tiny_policy(toy_tokenizer, seed=5).state_dict()
    for r in ranks:
        assert all(torch.equal(v, loaded[k]) for k, v in r["materialized"].items())
        assert all(torch.equal(v, ranks[0]["buffers"][k]) for k, v in r["buffers"].items())
