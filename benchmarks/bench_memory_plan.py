"""Check the memory plan against a real training step on CPU: peak RSS and saved activations vs the plan.

For each setting, a fresh subprocess builds SmolLM2-135M's architecture (shipped
config, random fp32 weights: the same bytes as the real checkpoint), a frozen
reference copy and AdamW, then runs two steps of the trainer's own update
code (reference log-probs without grad, then ``score_completions`` +
``policy_loss`` + backward + clip + AdamW step) on a packed micro-batch of
``b`` sequences of ``P`` prompt and ``T`` completion tokens. It reports the peak
resident memory above the RSS before the model existed (``ru_maxrss``) and
the bytes saved for backward (saved-tensor hooks), next to the plan's update
phase and activation rows for the same config (fp32, no CUDA context)::

    .venv/bin/python benchmarks/bench_memory_plan.py            # 4 settings, about a minute on 2 cores
    .venv/bin/python benchmarks/bench_memory_plan.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

SETTINGS = [  # micro-batch, prompt tokens, completion tokens, gradient checkpointing
    (2, 512, 128, False), (2, 512, 128, True), (1, 1024, 256, False), (1, 1024, 256, True)]


def measure(b: int, prompt: int, completion: int, gc: bool) -> dict[str, float]:
    """Run two update steps in this process; peak RSS (bytes above the start) and saved-tensor bytes."""
    import psutil
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from flexbench.train.memory import model_config
    from flexbench.train.optim.forward import pack, score_completions
    from flexbench.train.optim.loss import policy_loss

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    start = psutil.Process().memory_info().rss
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**model_config("smollm2"))).float()
    reference = AutoModelForCausalLM.from_config(model.config).float().eval().requires_grad_(False)
    if gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    vocab = model.config.vocab_size
    batch = pack([torch.randint(3, vocab, (prompt,)).tolist()] * b,
                 [torch.randint(3, vocab, (completion,)).tolist()] * b, 0)
    saved: dict[int, int] = {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    for _ in range(2):
        with torch.no_grad():
            ref = score_completions(reference, batch).logprobs
        model.train()
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            scores = score_completions(model, batch, entropy=True)
            out = policy_loss(scores.logprobs, scores.logprobs.detach(), torch.ones_like(ref),
                              batch.completion_mask, clip_eps=0.2, ref_logprobs=ref, kl_coef=0.01,
                              entropy=scores.entropy, entropy_coef=0.005, denom=float(b * completion))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    end = psutil.Process().memory_info().rss  # weights, grads freed, AdamW state: what stays between steps
    return {"peak_bytes": float(peak - start), "saved_bytes": float(sum(saved.values())),
            "after_step_bytes": float(end - start)}


def planned(b: int, prompt: int, completion: int, gc: bool) -> dict[str, float]:
    """The plan's peak of the update and step phases and its activation + logits rows for the same setting
    (CPU, fp32). The measured peak RSS covers both the backward and the optimizer step."""
    from flexbench.train.config import TrainConfig
    from flexbench.train.memory import Setup, plan_memory
    from flexbench.train.methods import get_method

    cfg = TrainConfig(model="smollm2", micro_batch_size=b, plan_prompt_tokens=prompt, max_new_tokens=completion,
                      gradient_checkpointing=gc, precision="no", engine="transformers")
    plan = plan_memory(cfg, get_method("flexrec"), Setup(1, None, "cpu"))
    rows = {c.name: c.bytes for c in plan.components}
    act = sum(v for k, v in rows.items() if k.startswith(("activations", "logits (training)", "attention")))
    peak = max(plan.phase_bytes("update"), plan.phase_bytes("step"))
    return {"update_bytes": peak, "activation_bytes": act, "state_bytes": plan.phase_bytes("update") - act,
            "step_bytes": plan.phase_bytes("step")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="Write the figures to this file.")
    parser.add_argument("--child", nargs=4, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        b, p, t, gc = args.child
        print(json.dumps(measure(b, p, t, bool(gc))))
        return 0
    rows = []
    mib = 2**20
    print(f"{'b':>2} {'P':>4} {'T':>4} {'ckpt':>5} | {'peak RSS':>9} {'plan':>9} {'ratio':>6} | "
          f"{'saved':>8} {'plan act':>8} {'ratio':>6}   (MiB)")
    for b, p, t, gc in SETTINGS:
        done = subprocess.run([sys.executable, __file__, "--child", str(b), str(p), str(t), str(int(gc))],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"{b:>2} {p:>4} {t:>4} {gc!s:>5} | failed (exit {done.returncode}; killed for memory?)")
            continue
        got = json.loads(done.stdout.strip().splitlines()[-1])
        plan = planned(b, p, t, gc)
        row = {"micro_batch": b, "prompt": p, "completion": t, "checkpointing": gc, **got, **plan,
               "peak_ratio": got["peak_bytes"] / plan["update_bytes"],
               "activation_ratio": got["saved_bytes"] / plan["activation_bytes"]}
        rows.append(row)
        print(f"{b:>2} {p:>4} {t:>4} {gc!s:>5} | {got['peak_bytes'] / mib:>9.0f} {plan['update_bytes'] / mib:>9.0f} "
              f"{row['peak_ratio']:>6.2f} | {got['saved_bytes'] / mib:>8.0f} {plan['activation_bytes'] / mib:>8.0f} "
              f"{row['activation_ratio']:>6.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
