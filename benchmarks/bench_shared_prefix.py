"""Prefix-shared scoring vs one sequence per rollout: time, peak memory and log-prob agreement.

The same batch (one prompt, ``G`` completions, the CPU preset's shape: SmolLM2-135M
architecture built from its shipped config with random weights, a 722-token
prompt and 142-token completions, fp32) goes through both layouts of the
trainer's scoring path (:func:`flexbench.train.optim.forward.score_completions`):

* unshared (the reference): :func:`flexbench.train.optim.forward.pack`, the
  prompt repeated ``G`` times;
* shared: :func:`flexbench.train.optim.shared.pack_shared`, one row, one copy
  of the prompt, block attention mask.

Timed per layout: the reference model's forward (no grad) plus the policy's
forward and backward of the token-mean policy loss, best of ``--repeats``. Each
(layout, G) runs in a fresh process so its peak resident memory (CPU) or peak
allocated memory (CUDA) is its own; memory is reported above the process's
level after the models are built. Prints, for G = 4 and G = 8, both rows, the
ratio as ``speed-up G=N: X.Xx`` and the largest log-prob difference.

    .venv/bin/python benchmarks/bench_shared_prefix.py [--group-sizes 4,8] [--prompt 722] [--completion 142]
        [--threads 1] [--repeats 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "flexbench" / "train" / "model_configs" / "SmolLM2-135M-Instruct.json"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group-sizes", default="4,8")
    p.add_argument("--prompt", type=int, default=722, help="prompt tokens (the CPU preset's KuaiRec prompts)")
    p.add_argument("--completion", type=int, default=142, help="completion tokens (a 30-label list)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    return p.parse_args()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(layout: str, g: int, prompt: int, completion: int, threads: int, repeats: int,
            device: str) -> dict[str, Any]:
    """One (layout, G) in this process: seconds, peak memory above the built models, and the log-probs."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from flexbench.train.optim.forward import pack, score_completions
    from flexbench.train.optim.loss import policy_loss
    from flexbench.train.optim.shared import pack_shared

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(str(CONFIG))
    policy = AutoModelForCausalLM.from_config(config).float().to(device)
    reference = AutoModelForCausalLM.from_config(config).float().to(device).eval()
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, config.vocab_size, (prompt,), generator=gen).tolist()] * g
    comps = [torch.randint(3, config.vocab_size, (completion,), generator=gen).tolist() for _ in range(g)]
    packer = pack_shared if layout == "shared" else pack
    batch = packer(prompts, comps, 0).to(device)
    adv = torch.randn(g, completion, generator=gen).to(device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mib()
    best, logp = float("inf"), None
    for _ in range(repeats):
        policy.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with torch.no_grad():
            ref = score_completions(reference, batch).logprobs
        scores = score_completions(policy, batch, entropy=True)
        loss = policy_loss(scores.logprobs, scores.logprobs.detach(), adv, batch.completion_mask,
                           ref_logprobs=ref, kl_coef=0.01, entropy=scores.entropy, entropy_coef=0.005).loss
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
        logp = scores.logprobs.detach().float().cpu()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else _rss_mib()
    return {"layout": layout, "g": g, "seconds": best, "peak_mib": peak - base, "logprobs": logp.tolist()}


def main() -> None:
    """Run both layouts for each G, each in a fresh process, and print the comparison."""
    import numpy as np

    args = _args()
    sizes = [int(x) for x in args.group_sizes.split(",")]
    print(f"prefix-shared scoring, SmolLM2-135M shape (random weights, fp32), prompt {args.prompt} + completion "
          f"{args.completion} tokens, {args.threads} thread(s), best of {args.repeats}, device {args.device}")
    print("reference layout: unshared (the prompt repeated per rollout); timed: reference forward + policy "
          "forward/backward")
    ctx = mp.get_context("spawn")
    for g in sizes:
        rows = {}
        for layout in ("unshared", "shared"):
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                rows[layout] = pool.submit(measure, layout, g, args.prompt, args.completion, args.threads,
                                           args.repeats, args.device).result()
            r = rows[layout]
            print(f"G={g} {layout:>8}: {r['seconds']:.2f} s, peak memory +{r['peak_mib']:.0f} MiB")
        diff = float(np.abs(np.asarray(rows["shared"]["logprobs"]) - np.asarray(rows["unshared"]["logprobs"])).max())
        ratio = rows["unshared"]["seconds"] / rows["shared"]["seconds"]
        mem = rows["unshared"]["peak_mib"] / max(rows["shared"]["peak_mib"], 1.0)
        print(f"speed-up G={g}: {ratio:.1f}x (memory {mem:.1f}x lower), max log-prob difference {diff:.2e}")


if __name__ == "__main__":
    main()
