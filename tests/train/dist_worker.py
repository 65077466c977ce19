"""One process of a CPU (gloo) multi-process training run, for ``test_distributed.py``.

Started with ``torch.multiprocessing.spawn``: sets the environment accelerate
reads for a multi-CPU run, trains the toy task through the real
:class:`~flexbench.train.loop.PolicyTrainer`, and writes what the test compares
to ``<results>/rank<r>.pt``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def run(rank: int, world: int, port: int, tok_dir: str, out_dir: str, results: str, options: dict[str, Any]) -> None:
    """Train 2 steps (and, with ``resume_to``, resume to that step) on process ``rank`` of ``world``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    import torch
    from policy_fixtures import TOY_NEED, tiny_policy, toy_instances, toy_labels, toy_trainer
    from transformers import AutoTokenizer

    from flexbench.train import loop
    from flexbench.train.config import TrainConfig
    from flexbench.train.curves import METRICS_FILE, read_metrics
    from flexbench.train.distributed import full_state_dict, make_accelerator
    from flexbench.train.validation import PolicyValidator
    from flexbench.types import Split

    torch.set_num_threads(1)
    options = dict(options)
    resume_to = options.pop("resume_to", None)
    acc = make_accelerator(TrainConfig(model="tiny"))
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.padding_side = "left"
    local_grads: list[torch.Tensor] = []
    average = loop.average_gradients

    def recording_average(params: Any, n: int) -> None:  # the value head's local gradient before averaging
        params = list(params)
        if not local_grads and params[0].grad is not None:
            local_grads.append(torch.cat([p.grad.detach().reshape(-1).clone() for p in params]))
        average(params, n)

    loop.average_gradients = recording_average
    valid = toy_instances(3, Split.VALID)

    def trainer(steps: int) -> Any:
        validator = PolicyValidator(tokenizer, {TOY_NEED.name: (TOY_NEED, valid, toy_labels(valid))},
                                    max_new_tokens=24, constrained=True)
        return toy_trainer(tokenizer, Path(out_dir), model=tiny_policy(tokenizer), validator=validator,
                           accelerator=acc, **{"steps": steps, "eval_every": 2, "save_every": 1, "lr": 1e-2,
                                               "kl_coef": 0.0, **options})

    first = trainer(2)
    first.train(resume=False)
    result: dict[str, Any] = {"step": first.progress.step}
    if resume_to is not None:
        second = trainer(resume_to)
        second.train(resume=True)
        first = second
        result["resumed_step"] = second.progress.step
    weights = full_state_dict(first.model)  # a collective: rank 0 gets the full tensors
    result.update(
        local_value_grad=local_grads[0] if local_grads else None,
        value_head={k: v.detach().clone() for k, v in first.value_head.state_dict().items()}
        if first.value_head is not None else None,
        full_weights=weights if rank == 0 else None,
        local_params={n: p.detach().clone() for n, p in first.acc.unwrap_model(first.model).named_parameters()}
        if not first.sharded else None,
        valid=read_metrics(Path(out_dir) / METRICS_FILE, "valid") if rank == 0 else None,
        train=read_metrics(Path(out_dir) / METRICS_FILE, "train") if rank == 0 else None)
    torch.save(result, Path(results) / f"rank{rank}.pt")
    acc.wait_for_everyone()
