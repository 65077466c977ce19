"""FSDP2 in one process (gloo on CPU; NCCL in the device check): sharding, gradient sync, sharded checkpoints.

Issue 25, findings 5 and 6: ``shard_model`` may shard over one process for
checks, :func:`grad_sync` defers FSDP2's reduce-scatter through
``set_requires_gradient_sync`` (accelerate's ``no_sync`` does nothing for it),
and sharded checkpoints are written and read shard by shard
(``torch.distributed.checkpoint``), with the previous checkpoint removed first
when the disk cannot hold two.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from policy_fixtures import tiny_policy, toy_tokenizer

from flexbench.train import checkpoint as ckpt
from flexbench.train.checkpoint import Progress, load_checkpoint, save_checkpoint, save_training_state
from flexbench.train.config import TrainConfig
from flexbench.train.distributed import grad_sync, is_sharded, iter_full_parameters, shard_model

__all__ = ["toy_tokenizer"]


class _OneProcess:
    num_processes = 1
    device = torch.device("cpu")
    is_main_process = True

    def __init__(self) -> None:
        self.no_sync_calls = 0

    @staticmethod
    def wait_for_everyone() -> None:
        return None

    @staticmethod
    def unwrap_model(model: Any) -> Any:
        return model

    def no_sync(self, model: Any) -> Any:
        self.no_sync_calls += 1
        return torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t)  # any context manager


@pytest.fixture
def one_process_group():  # type: ignore[no-untyped-def]
    import torch.distributed as dist

    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def _sharded(tokenizer: Any) -> tuple[torch.nn.Module, torch.nn.Module]:
    plain = tiny_policy(tokenizer)
    model = shard_model(copy.deepcopy(plain), TrainConfig(model="tiny", sharding="fsdp"), _OneProcess(),
                        allow_single_process=True)
    return plain, model


def _loss(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, labels=ids).loss


def test_one_process_fsdp_matches_the_unsharded_model(toy_tokenizer, one_process_group) -> None:  # type: ignore[no-untyped-def]
    plain, model = _sharded(toy_tokenizer)
    assert is_sharded(model)
    full = dict(iter_full_parameters(model))
    assert all(torch.equal(full[k], v) for k, v in plain.state_dict().items())
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]])
    assert torch.allclose(_loss(model, ids), _loss(plain, ids), atol=1e-6)


def test_grad_sync_defers_fsdp_reduce_scatter_only_when_asked(toy_tokenizer, one_process_group,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plain, model = _sharded(toy_tokenizer)
    calls: list[bool] = []
    original = type(model).set_requires_gradient_sync

    def record(self: Any, flag: bool, *args: Any, **kwargs: Any) -> None:
        calls.append(flag)
        original(self, flag, *args, **kwargs)

    monkeypatch.setattr(type(model), "set_requires_gradient_sync", record)
    batches = [torch.tensor([[3, 4, 5, 6]]), torch.tensor([[7, 8, 9, 10]])]
    acc = _OneProcess()
    for env, expected in (("0", []), ("1", [False, True])):
        monkeypatch.setenv("FLEXBENCH_FSDP_NO_SYNC", env)
        calls.clear()
        model.zero_grad(set_to_none=True)
        for k, ids in enumerate(batches):
            with grad_sync(model, acc, enabled=k == len(batches) - 1):
                _loss(model, ids).backward()
        assert calls == expected
        got = {n: p.grad.full_tensor() for n, p in model.named_parameters()}
        plain.zero_grad(set_to_none=True)
        for ids in batches:
            _loss(plain, ids).backward()
        for n, p in plain.named_parameters():
            assert torch.allclose(got[n], p.grad, atol=1e-6), n
    assert acc.no_sync_calls == 0  # FSDP2 never goes through accelerate's no-op no_sync


def test_grad_sync_uses_ddp_no_sync_on_several_processes(toy_tokenizer) -> None:  # type: ignore[no-untyped-def]
    acc = _OneProcess()
    acc.num_processes = 2
    model = tiny_policy(toy_tokenizer)
    with grad_sync(model, acc, enabled=False):
        pass
    with grad_sync(model, acc, enabled=True):
        pass
    assert acc.no_sync_calls == 1


def test_sharded_checkpoint_is_written_and_read_shard_by_shard(toy_tokenizer, one_process_group,  # type: ignore[no-untyped-def]
                                                               tmp_path: Path) -> None:
    _, model = _sharded(toy_tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    _loss(model, torch.tensor([[3, 4, 5, 6]])).backward()
    opt.step()
    save_training_state(tmp_path, Progress(3, 12), model=model, optimizer=opt, scheduler=sched,
                        accelerator=_OneProcess())
    assert (tmp_path / "checkpoint" / "dcp" / ".metadata").exists()
    assert torch.load(tmp_path / "checkpoint" / "state.pt", weights_only=False)["format"] == "dcp"
    saved = {k: v.clone() for k, v in iter_full_parameters(model)}
    _, fresh = _sharded(toy_tokenizer)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    progress = load_checkpoint(tmp_path, model=fresh, optimizer=fresh_opt,
                               scheduler=torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda s: 1.0))
    assert progress == Progress(3, 12)
    assert all(torch.equal(saved[k], v) for k, v in iter_full_parameters(fresh))
    exp_avg = [s["exp_avg"].full_tensor() for s in fresh_opt.state.values()]
    assert len(exp_avg) == len(list(fresh.parameters())) and all(e.abs().sum() > 0 for e in exp_avg)


def test_previous_checkpoint_goes_first_when_the_disk_holds_one(toy_tokenizer, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_policy(toy_tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    save_checkpoint(tmp_path, Progress(1, 1), model=model, optimizer=opt, scheduler=sched)
    size = (tmp_path / "checkpoint" / "state.pt").stat().st_size
    seen: list[bool] = []
    real_save = torch.save

    def spy(obj: Any, path: Any) -> None:  # is the previous checkpoint still on disk while the new one is written?
        seen.append((tmp_path / "checkpoint").exists())
        real_save(obj, path)

    monkeypatch.setattr(ckpt.torch, "save", spy)
    usage = type("usage", (), {"free": size // 2})  # not room for a second copy
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda _p: usage)
    save_checkpoint(tmp_path, Progress(2, 2), model=model, optimizer=opt, scheduler=sched)
    assert seen == [False] and "removed first" in capsys.readouterr().err
    usage.free = 10 * size
    save_checkpoint(tmp_path, Progress(3, 3), model=model, optimizer=opt, scheduler=sched)
    assert seen == [False, True]  # room for two: the previous one stays until the rename
    assert load_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched) == Progress(3, 3)


def test_gathering_can_be_skipped_while_an_engine_samples(toy_tokenizer, one_process_group,  # type: ignore[no-untyped-def]
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.fsdp import FSDPModule

    from flexbench.train.distributed import gathered_weights

    _, model = _sharded(toy_tokenizer)
    calls: list[int] = []
    original = FSDPModule.unshard
    monkeypatch.setattr(FSDPModule, "unshard", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    with gathered_weights(model, enabled=False):
        pass
    assert calls == []
    with gathered_weights(model):
        pass
    assert len(calls) == 3  # two decoder layers and the root
