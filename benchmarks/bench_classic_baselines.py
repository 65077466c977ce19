"""BERT4Rec vs random, popularity, STAR and the retriever's order on the interest need of the samples.

For each dataset this trains BERT4Rec (``flexbench train bert4rec`` with the given
options, into a temporary checkpoint directory unless ``--out`` is given), prints
its training and scoring times, and then the test-split NDCG@10 of every
classic ranker next to the references measured in the same run: the exact
expected NDCG@10 of a uniformly random permutation
(``E[DCG@10] = mean(g) * sum_{j<=10} 1/log2(j+1)``), the seeded ``random``
ranker, and ``candidate-order``.

    FLEXBENCH_DATA=/tmp/fb .venv/bin/python benchmarks/bench_classic_baselines.py \
        [--datasets kuairec ml-1m] [--need interest] [--split test] [--set epochs=30 ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from baselines.bert4rec import train_command
from baselines.scoring import expected_random_ndcg
from flexbench.catalog import open_dataset
from flexbench.metrics import mean_metrics, score_rankings
from flexbench.ranker import RankerContext, build_ranker
from flexbench.trainers import TrainRequest
from flexbench.vocabulary import get_need

RANKERS = ("random", "candidate-order", "popularity", "star", "bert4rec")


def run(name: str, need: str, split: str, options: dict, out: Path) -> None:
    """Train BERT4Rec on ``name`` and print every ranker's NDCG@10 on ``need``/``split``."""
    dataset = open_dataset(name)
    train_command(TrainRequest("bert4rec", name, (need,), out, resume=False, options=options))
    instances, labels = dataset.instances(split), dataset.labels(need, split)
    print(f"{name} {need}/{split} n={len(instances)}  expected-random ndcg@10={expected_random_ndcg(labels.values()):.4f}")
    for ranker_name in RANKERS:
        start = time.perf_counter()
        ranker = build_ranker(ranker_name, RankerContext(dataset, options={"checkpoint": str(out)}))
        rankings = ranker.rank(instances, get_need(need))
        elapsed = time.perf_counter() - start
        ndcg = mean_metrics(score_rankings([r.item_ids for r in rankings],
                                           [labels[r.instance_id] for r in rankings]))
        print(f"  {ranker_name:16s} ndcg@5={ndcg['ndcg@5']:.4f} ndcg@10={ndcg['ndcg@10']:.4f}  "
              f"(build + rank {elapsed:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["kuairec", "ml-1m"])
    parser.add_argument("--need", default="interest")
    parser.add_argument("--split", default="test")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="BERT4Rec option key=value")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint root (default: a temporary one)")
    args = parser.parse_args()
    options = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.overrides)}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for name in args.datasets:
            run(name, args.need, args.split, options, root / name)


if __name__ == "__main__":
    main()
