"""Constrained greedy evaluation engines side by side on the same instances: instances/s and equal outputs.

The zero-shot SmolLM2-135M ranker's prompts (``build_prompt`` with the
tokenizer's chat template) of the first ``--limit`` test instances of a
prepared dataset (default: the bundled KuaiRec sample; ``FLEXBENCH_DATA`` picks
another data root, e.g. one holding the medium sample) go through:

* ``generate`` (the reference, today's path): :class:`flexbench.llm.backends.TransformersBackend`,
  transformers ``generate`` with :class:`~flexbench.llm.constrained.PermutationLogitsProcessor`,
  greedy, batch ``--batch-generate``;
* ``cached``: :func:`flexbench.llm.constrained_greedy.greedy_permutations`, the
  same greedy choices with one KV cache per batch and no forward pass on forced
  steps, batch ``--batch-cached``;
* ``vllm``: reported as not measured unless vLLM imports in this environment
  (the CPU build lives in ``.venv-vllm``; it has no permutation constraint, so
  it is not a drop-in for this path).

Prints instances/s per engine, the speed-up of ``cached`` over ``generate``
(``speed-up cached: N.Nx``) and how many of the outputs are identical token for
token. ``--item-chars`` and ``--history`` shorten the prompt like the CPU setting.

    .venv/bin/python benchmarks/bench_eval_engines.py [--dataset kuairec] [--limit 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from typing import Any


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="kuairec")
    p.add_argument("--need", default="interest")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-generate", type=int, default=4)
    p.add_argument("--batch-cached", type=int, default=8)
    p.add_argument("--item-chars", type=int, default=300, help="characters of item text per line (prompt size)")
    return p.parse_args()


def _prompts(args: argparse.Namespace, tokenizer: Any) -> list[Any]:
    from flexbench.catalog import open_dataset
    from flexbench.llm.prompts import build_prompt
    from flexbench.vocabulary import get_need

    ds = open_dataset(args.dataset)
    need = get_need(args.need)
    return [build_prompt(x, need, seed=0, tokenizer=tokenizer, max_item_chars=args.item_chars)
            for x in ds.instances("test", limit=args.limit)]


def main() -> None:
    """Run each engine on the same prompts and print the comparison."""
    import torch

    from flexbench.llm.backends import SamplingParams, TransformersBackend
    from flexbench.llm.constrained_greedy import greedy_permutations
    from flexbench.llm.models import load_model_and_tokenizer

    args = _args()
    torch.set_num_threads(args.threads)
    model, tok = load_model_and_tokenizer("smollm2", device="cpu")
    prompts = _prompts(args, tok)
    texts, shown = [p.text for p in prompts], [p.shown_ids for p in prompts]
    n_tokens = sum(len(tok(t)["input_ids"]) for t in texts) / len(texts)
    print(f"{len(prompts)} {args.dataset} {args.need} test prompts (mean {n_tokens:.0f} tokens, K = "
          f"{len(shown[0])}), SmolLM2-135M fp32, {args.threads} threads")
    backend = TransformersBackend(model, tok, batch_size=args.batch_generate, cached_greedy=False)
    start = time.perf_counter()
    reference = backend.generate(texts, SamplingParams(max_new_tokens=8, temperature=0.0), candidate_ids=shown)
    t_gen = time.perf_counter() - start
    print(f"generate (reference): {len(texts) / t_gen:.2f} instances/s ({t_gen:.1f} s)")
    start = time.perf_counter()
    cached = greedy_permutations(model, tok, texts, shown, backend.eos_token_ids,
                                 add_special_tokens=backend.add_special_tokens, batch_size=args.batch_cached)
    t_cached = time.perf_counter() - start
    same = sum(list(r[0].token_ids) == c for r, c in zip(reference, cached, strict=True))
    print(f"cached: {len(texts) / t_cached:.2f} instances/s ({t_cached:.1f} s); identical outputs {same}/{len(texts)}")
    print(f"speed-up cached: {t_gen / t_cached:.1f}x")
    if importlib.util.find_spec("vllm") is None:
        print("vllm: not measured (not importable here; the CPU build is in .venv-vllm and has no permutation "
              "constraint)")


if __name__ == "__main__":
    main()
