"""Multi-process training on CPU (gloo): DDP with the PPO value head, FSDP2 sharding, split validation.

The two-process runs spawn real processes (``dist_worker.run``) that train the toy
task through :class:`~flexbench.train.loop.PolicyTrainer`; each takes about a minute
on two shared cores, so they are marked ``slow``. The fast tests cover the helpers.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from policy_fixtures import tiny_policy, toy_tokenizer

from flexbench.errors import FlexBenchError
from flexbench.train.config import TrainConfig
from flexbench.train.distributed import (
    average_gradients,
    clip_grad_norm,
    decoder_layers,
    full_state_dict,
    gathered_weights,
    is_sharded,
    iter_full_parameters,
    rank_share,
    shard_model,
)

__all__ = ["toy_tokenizer"]


class _OneProcess:
    num_processes = 1
    device = torch.device("cpu")

    @staticmethod
    def clip_grad_norm_(params: Any, max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


def test_rank_share_covers_every_item_once() -> None:
    shares = [rank_share(7, r, 3) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(i for s in shares for i in s) == list(range(7))


def test_sharding_needs_several_processes(toy_tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = tiny_policy(toy_tokenizer)
    with pytest.raises(FlexBenchError, match="accelerate launch --num_processes N"):
        shard_model(model, TrainConfig(model="tiny", sharding="fsdp"), _OneProcess())
    assert shard_model(model, TrainConfig(model="tiny"), _OneProcess()) is model
    assert len(decoder_layers(model)) == model.config.num_hidden_layers


def test_unsharded_helpers_are_plain(toy_tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Without FSDP: gathering is a no-op, the full state is the model's own, clipping is torch's."""
    model = tiny_policy(toy_tokenizer)
    assert not is_sharded(model)
    with gathered_weights(model):
        pass
    state = full_state_dict(model)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(iter_full_parameters(model), state.items()))
    ids = torch.tensor([[3, 4, 5, 6]])
    model(input_ids=ids, labels=ids).loss.backward()
    params = list(model.parameters())
    expected = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
    average_gradients(params, 1)  # one process: unchanged
    assert clip_grad_norm(params, 1e-3, _OneProcess()) == pytest.approx(expected, rel=1e-5)
    assert float(torch.nn.utils.get_total_norm([p.grad for p in params])) == pytest.approx(1e-3, rel=1e-3)


# ------------------------------------------------------------------------------- two processes (slow)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(tokenizer: Any, tmp_path: Path, options: dict[str, Any]) -> list[dict[str, Any]]:
    import torch.multiprocessing as mp
    from dist_worker import run

    tok_dir, out, results = tmp_path / "tok", tmp_path / "out", tmp_path / "results"
    tokenizer.save_pretrained(tok_dir)
    results.mkdir()
    mp.spawn(run, args=(2, _free_port(), str(tok_dir), str(out), str(results), options), nprocs=2, join=True)
    return [torch.load(results / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-7) for k in a)


@pytest.mark.slow
def test_ddp_averages_value_head_and_splits_validation(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """flexrec-ppo on 2 processes with different prompts: value heads stay identical, validation covers all."""
    r0, r1 = _spawn(toy_tokenizer, tmp_path, {"method": "flexrec-ppo"})
    assert r0["step"] == r1["step"] == 2
    assert not torch.allclose(r0["local_value_grad"], r1["local_value_grad"]), "ranks saw the same data"
    assert _same(r0["value_head"], r1["value_head"])
    assert r0["value_head"]["linear.weight"].abs().sum() > 0
    assert _same(r0["local_params"], r1["local_params"])
    assert [(v["step"], v["n"]) for v in r0["valid"]] == [(0, 3), (2, 3)]
    assert {"time_rollout", "time_logprob", "time_update", "time_sync", "rollout_tokens_per_s"} <= set(r0["train"][0])


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["fsdp", "zero2"])
def test_fsdp_trains_checkpoints_and_resumes(toy_tokenizer, tmp_path: Path, sharding: str) -> None:  # type: ignore[no-untyped-def]
    """FSDP2 on 2 processes: rollouts and validation under gathered weights, full checkpoint, resume."""
    from transformers import AutoModelForCausalLM

    r0, r1 = _spawn(toy_tokenizer, tmp_path, {"method": "flexrec-ppo", "sharding": sharding, "resume_to": 3})
    assert r0["step"] == 2 and r0["resumed_step"] == r1["resumed_step"] == 3
    assert _same(r0["value_head"], r1["value_head"])
    assert [(v["step"], v["n"]) for v in r0["valid"]] == [(0, 3), (2, 3), (3, 3)]
    state = torch.load(tmp_path / "out" / "checkpoint" / "state.pt", weights_only=False)
    assert state["sharded"] and state["step"] == 3
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "policy")
    assert saved.config.architectures == ["LlamaForCausalLM"]
    full = r0["full_weights"]
    own = saved.state_dict()
    assert all(torch.equal(own[k], v) for k, v in full.items())
    assert any(not torch.equal(v, tiny_policy(toy_tokenizer).state_dict()[k]) for k, v in full.items())
