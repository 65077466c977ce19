"""Generation throughput of the LLM backends on the same mock-dataset prompts.

Measures generated tokens per second (EOS included, padding excluded) for

* ``greedy b=1``       transformers, one prompt at a time (the reference row);
* ``sampled b=B``      transformers, B prompts per batch, temperature 1, top-p 0.95;
* ``constrained b=B``  transformers greedy with the permutation logits processor;
* ``vllm greedy`` / ``vllm sampled``  only on a CUDA machine with vLLM importable
  (same prompts and settings; vLLM is not installable next to this project's pins,
  so these rows have not been run by the authors).

Every row prints its speed relative to the reference measured in the same run.

    .venv/bin/python benchmarks/bench_generation.py --model smollm2 --prompts 4 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from flexbench.llm.backends.base import Generation, SamplingParams


def _prompts(tokenizer, n: int) -> tuple[list[str], list[tuple[str, ...]]]:
    from flexbench.llm.prompts import build_prompt
    from flexbench.mock import write_mock_dataset
    from flexbench.vocabulary import INTEREST

    with tempfile.TemporaryDirectory() as tmp:
        instances = write_mock_dataset(Path(tmp) / "mock").instances("test", limit=n)
    return ([build_prompt(x, INTEREST, seed=0, tokenizer=tokenizer).text for x in instances],
            [x.candidate_ids for x in instances])


def _timed(label: str, run: Callable[[], list[list[Generation]]], reference: float | None,
           count: Callable[[list[list[Generation]]], int]) -> float:
    start = time.perf_counter()
    outputs = run()
    seconds = time.perf_counter() - start
    tokens = count(outputs)
    rate = tokens / seconds
    rel = "reference" if reference is None else f"{rate / reference:5.2f}x reference"
    print(f"{label:<22} {tokens:6d} tokens {seconds:8.1f} s {rate:8.1f} tok/s   {rel}")
    return rate


def _count_tokens(outputs: list[list[Generation]]) -> int:
    return sum(len(g.token_ids) for gens in outputs for g in gens)


def bench_transformers(model_ref: str, prompts_n: int, max_new: int, batch: int, device: str
                       ) -> tuple[float, list[str], Sequence[tuple[str, ...]]]:
    """Run the transformers rows; returns the reference rate and the prompts used."""
    from flexbench.llm.backends.transformers_backend import TransformersBackend
    from flexbench.llm.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_ref, device=device)
    prompts, cands = _prompts(tok, prompts_n)
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    print(f"model {model_ref} on {model.device}, {model.dtype}; {len(prompts)} prompts of "
          f"{min(lengths)}-{max(lengths)} tokens; max_new_tokens={max_new}")
    one = TransformersBackend(model, tok, batch_size=1)
    many = TransformersBackend(model, tok, batch_size=batch)
    greedy = SamplingParams(max_new_tokens=max_new)
    sampled = SamplingParams(max_new_tokens=max_new, temperature=1.0, top_p=0.95, seed=0)
    ref = _timed("greedy b=1", lambda: one.generate(prompts, greedy), None, _count_tokens)
    _timed(f"sampled b={batch}", lambda: many.generate(prompts, sampled), ref, _count_tokens)
    _timed(f"constrained b={batch}", lambda: many.generate(prompts, greedy, candidate_ids=cands), ref,
           _count_tokens)
    return ref, prompts, cands


def bench_vllm(model_ref: str, prompts: list[str], max_new: int, reference: float) -> None:
    """vLLM rows on the same prompts (CUDA + vLLM only)."""
    from flexbench.llm.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(model_ref)
    _timed("vllm greedy", lambda: backend.generate(prompts, SamplingParams(max_new_tokens=max_new)),
           reference, _count_tokens)
    _timed("vllm sampled", lambda: backend.generate(
        prompts, SamplingParams(max_new_tokens=max_new, temperature=1.0, top_p=0.95)), reference, _count_tokens)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args(argv)
    import importlib.util

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ref, prompts, _ = bench_transformers(args.model, args.prompts, args.max_new_tokens, args.batch_size,
                                         args.device)
    if torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None:
        bench_vllm(args.model, prompts, args.max_new_tokens, ref)
    else:
        print("vllm rows skipped: needs a CUDA device and an importable vllm")


if __name__ == "__main__":
    main()
