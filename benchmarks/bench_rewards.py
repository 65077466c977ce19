"""Causal swap rewards: O(K) closed form vs brute-force swap recomputation, same run.

Computes the FlexRec causal swap reward for 512 rollouts x K = 30 (a GRPO step of
64 prompts x G = 8) with :func:`flexbench.train.credit.rewards.causal_swap_rewards` and
with the reference :func:`~flexbench.train.credit.rewards.brute_force_swap_rewards`,
which builds every swapped ranking and recomputes NDCG (vectorised over the
batch). Prints the median of ``timeit`` repeats for both, the speed-up, and the
largest absolute difference between the two.

    .venv/bin/python benchmarks/bench_rewards.py [--rollouts 512] [--k 30] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import timeit

import numpy as np

from flexbench.train.credit.rewards import brute_force_swap_rewards, causal_swap_rewards, ideal_dcg


def _median_seconds(fn, repeats: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return statistics.median(t / number for t in timer.repeat(repeat=repeats, number=number))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=512)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    gains = rng.exponential(1.0, size=(args.rollouts, args.k))
    idcg = ideal_dcg(gains)

    fast = _median_seconds(lambda: causal_swap_rewards(gains, idcg), args.repeats)
    brute = _median_seconds(lambda: brute_force_swap_rewards(gains, idcg), max(3, args.repeats // 5))
    diff = np.abs(causal_swap_rewards(gains, idcg) - brute_force_swap_rewards(gains, idcg)).max()

    print(f"causal swap rewards, {args.rollouts} rollouts x K={args.k} (median of timeit repeats)")
    print(f"  closed form (operator)    : {fast * 1e6:10.1f} us")
    print(f"  brute force (reference)   : {brute * 1e6:10.1f} us")
    print(f"  speed-up                  : {brute / fast:10.1f} x")
    print(f"  max |closed - brute|      : {diff:10.2e}")


if __name__ == "__main__":
    main()
