"""One "node" of a two-node CPU run, started by ``torchrun`` (``test_two_nodes.py``).

``torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:PORT``
runs this script once per node; torchrun sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and accelerate builds the
gloo process group from them, exactly as on two GPU nodes with NCCL. The script
trains the toy task with ``sharding=fsdp`` for one step (checkpoint at step 1),
resumes to step 2 in a new trainer, writes a sharded checkpoint
(:func:`~flexbench.train.checkpoint.save_training_state`) and restores it into a
third model, and saves what the test compares to ``<results>/rank<r>.pt``.

    python node_worker.py TOKENIZER_DIR OUT_DIR RESULTS_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(tok_dir: str, out_dir: str, results: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from policy_fixtures import tiny_policy, toy_trainer
    from transformers import AutoTokenizer

    from flexbench.train.checkpoint import Progress, load_checkpoint, save_training_state
    from flexbench.train.config import TrainConfig
    from flexbench.train.distributed import full_state_dict, iter_full_parameters, make_accelerator

    torch.set_num_threads(1)
    acc = make_accelerator(TrainConfig(model="tiny"))
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    tokenizer.padding_side = "left"
    options = {"sharding": "fsdp", "save_every": 1, "lr": 1e-2, "kl_coef": 0.0, "method": "flexrec"}

    def trainer(steps: int):  # type: ignore[no-untyped-def]
        return toy_trainer(tokenizer, Path(out_dir), model=tiny_policy(tokenizer), accelerator=acc,
                           steps=steps, **options)

    first = trainer(1)
    first.train(resume=False)
    second = trainer(2)
    second.train(resume=True)
    weights = full_state_dict(second.model)  # rank 0 gets the full tensors
    sharded_dir = Path(out_dir) / "sharded"
    save_training_state(sharded_dir, second.progress, model=second.model, optimizer=second.optimizer,
                        scheduler=second.scheduler, accelerator=acc)
    third = trainer(2)
    progress = load_checkpoint(sharded_dir, model=third.model, optimizer=third.optimizer, scheduler=third.scheduler)
    restored = dict(iter_full_parameters(third.model))
    mine = dict(iter_full_parameters(second.model))
    result = {"rank": acc.process_index, "world": acc.num_processes, "first_step": first.progress.step,
              "resumed_step": second.progress.step, "sharded_progress": progress,
              "restored_equal": all(torch.equal(mine[k], v) for k, v in restored.items()),
              "full_weights": weights if acc.is_main_process else None,
              "node": os.environ.get("GROUP_RANK")}
    assert progress == Progress(2, second.progress.position)
    result.update(materialized(tokenizer, acc))
    torch.save(result, Path(results) / f"rank{acc.process_index}.pt")
    acc.wait_for_everyone()


def materialized(tokenizer, acc) -> dict:  # type: ignore[no-untyped-def]
    """Rank 0 loads the policy (seed 5), the others build it on the meta device; after sharding every rank
    holds rank 0's weights and rotary buffers (``materialize_from_rank0``)."""
    import torch
    from policy_fixtures import tiny_policy

    from flexbench.train.config import TrainConfig
    from flexbench.train.distributed import iter_full_parameters, shard_model

    if acc.is_main_process:
        model = tiny_policy(tokenizer, seed=5)
    else:
        with torch.device("meta"):
            model = tiny_policy(tokenizer, seed=5)
    was_meta = any(p.is_meta for p in model.parameters())
    model = shard_model(model, TrainConfig(model="tiny", sharding="fsdp"), acc)
    full = {k: v.clone() for k, v in iter_full_parameters(model)}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    return {"meta_built": was_meta, "materialized": full, "buffers": buffers}


if __name__ == "__main__":
    main(*sys.argv[1:4])
