"""Policy training cost: rollout tokens/s and update time per step, next to a bare-model reference.

Builds the real training path on a prepared dataset (default: the bundled
KuaiRec sample) with the CPU default config (SmolLM2-135M, G = 4, one prompt
per step, 160 new tokens) and times, over ``--steps`` RL steps:

* rollout: :class:`flexbench.train.rollout.sampler.RolloutSampler` (prompt, sampling
  through the transformers backend, parsing, credit) -> generated tokens/s;
* update: reference log-probs + the PPO-clip/KL/entropy update
  (:class:`flexbench.train.loop.PolicyTrainer` internals) -> seconds/step.

Reference measured in the same run on the same prompts and tokens:
``model.generate`` with the same sampling settings (no parsing, no credit),
and one bare ``forward + backward`` of the same packed rollouts (no reference
model, no loss terms). On CUDA it also prints the peak GPU memory; pass
``--preset paper`` (Qwen2.5-3B-Instruct, bf16 autocast, G = 8) on a GPU machine.

    .venv/bin/python benchmarks/bench_train.py [--model smollm2] [--dataset kuairec] [--steps 2]
        [--preset cpu|paper] [--threads 1] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="kuairec")
    parser.add_argument("--need", default="interest")
    parser.add_argument("--model", default=None)
    parser.add_argument("--preset", default=None, help="a preset of flexbench/train/presets (cpu, paper)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="TrainConfig key=value")
    return parser.parse_args()


def _build(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import torch

    from flexbench.catalog import open_dataset
    from flexbench.cli.train import parse_overrides
    from flexbench.train.config import TrainConfig
    from flexbench.train.loop import PolicyTrainer
    from flexbench.train.methods import get_method
    from flexbench.train.rollout.engines import make_backend
    from flexbench.train.run import _load_policy, _reference
    from flexbench.train.signal.gains import make_gain_provider
    from flexbench.train.tasks import TaskSampler
    from flexbench.vocabulary import get_need

    options = {**({"preset": args.preset} if args.preset else {}), **parse_overrides(args.overrides)}
    cfg = TrainConfig.from_options(options, model=args.model, steps=args.steps)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = open_dataset(args.dataset)
    need = get_need(args.need)
    gains = {need.name: make_gain_provider(dataset, need.name, "labels")}  # no critic needed to time
    tasks = TaskSampler(dataset.instances("train"), [need], gains, seed=cfg.seed)
    method = get_method("flexrec")
    model, tokenizer = _load_policy(cfg)
    backend, sync = make_backend(cfg, model, tokenizer)
    out = dataset.root.parent.parent / "cache" / "bench_train"
    trainer = PolicyTrainer(cfg, method, model, tokenizer, tasks, out, backend=backend, sync=sync,
                            reference=_reference(cfg, method, model), progress=False)
    return cfg, trainer, tokenizer


def _time_steps(trainer: Any, steps: int) -> dict[str, float]:
    import torch

    from flexbench.train.checkpoint import Progress

    gen_s = upd_s = 0.0
    tokens = 0
    rollouts_all = []
    for step in range(steps):
        tasks, position = trainer._draw(trainer.cfg.prompts_per_step)
        trainer.progress = Progress(step, position)
        policy = trainer.acc.unwrap_model(trainer.model)
        policy.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            rollouts = trainer.sampler.sample(tasks, step)
        t1 = time.perf_counter()
        with torch.no_grad():
            prepared = trainer._prepare(rollouts)
        trainer.model.train()
        trainer._update(prepared)
        t2 = time.perf_counter()
        gen_s, upd_s = gen_s + t1 - t0, upd_s + t2 - t1
        tokens += sum(len(r.completion_ids) for r in rollouts)
        rollouts_all.append((tasks, rollouts))
    return {"gen_s": gen_s, "upd_s": upd_s, "tokens": tokens, "rollouts": rollouts_all}


def _reference(trainer: Any, tokenizer: Any, measured: dict[str, Any]) -> dict[str, float]:
    """Bare ``model.generate`` on the same prompts and a bare forward+backward of the same rollouts."""
    import torch

    from flexbench.llm.prompts import build_prompt
    from flexbench.train.optim.forward import score_completions

    cfg = trainer.cfg
    model = trainer.acc.unwrap_model(trainer.model)
    gen_s = fb_s = 0.0
    tokens = 0
    for tasks, rollouts in measured["rollouts"]:
        texts = [build_prompt(t.instance, t.need, seed=cfg.seed + t.position, tokenizer=tokenizer).text for t in tasks]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        model.eval()
        torch.manual_seed(0)
        t0 = time.perf_counter()
        with torch.no_grad():
            seqs = model.generate(**enc, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
                                  max_new_tokens=cfg.max_new_tokens, num_return_sequences=cfg.group_size,
                                  pad_token_id=tokenizer.pad_token_id)
        gen_s += time.perf_counter() - t0
        tokens += int((seqs[:, enc["input_ids"].shape[1]:] != tokenizer.pad_token_id).sum())
        model.train()
        t1 = time.perf_counter()
        for start in range(0, len(rollouts), cfg.micro_batch_size):
            batch = trainer._pack(rollouts[start:start + cfg.micro_batch_size])
            with trainer.acc.autocast():
                score_completions(model, batch).logprobs.sum().backward()
        fb_s += time.perf_counter() - t1
        model.zero_grad(set_to_none=True)
    return {"gen_s": gen_s, "fb_s": fb_s, "tokens": tokens}


def main() -> None:
    args = _args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    cfg, trainer, tokenizer = _build(args)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    measured = _time_steps(trainer, args.steps)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    ref = _reference(trainer, tokenizer, measured)
    n = args.steps
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU x{torch.get_num_threads()} threads"
    print(f"bench_train: model={cfg.model} dataset={args.dataset} device={device} steps={n} "
          f"prompts/step={cfg.prompts_per_step} G={cfg.group_size} max_new_tokens={cfg.max_new_tokens}")
    print(f"  rollout (sample+parse+credit): {measured['tokens'] / measured['gen_s']:8.1f} tokens/s "
          f"({measured['gen_s'] / n:.1f} s/step, {measured['tokens'] / n:.0f} tokens/step)")
    print(f"  reference model.generate:      {ref['tokens'] / ref['gen_s']:8.1f} tokens/s "
          f"({ref['gen_s'] / n:.1f} s/step)")
    print(f"  update (ref logp + PPO-clip/KL/entropy + AdamW): {measured['upd_s'] / n:.2f} s/step")
    print(f"  reference bare forward+backward:                 {ref['fb_s'] / n:.2f} s/step")
    if peak is not None:
        print(f"  peak GPU memory: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
