"""A small fixed result store (and checkpoints) for the table tests (imported by name, like
``policy_fixtures``).

Per-instance scores follow fixed formulas, aggregates are their means, and
provenance carries fixed values (no clock), so everything rendered from this
store is reproducible byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

from flexbench.results import ResultStore, record_to_json
from flexbench.types import InstanceRecord, RunKey, RunResult

METRICS = ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "precision@5", "mrr@5")
N = 20


def scores(level: float, spread: float, phase: int) -> list[dict[str, float]]:
    """Per-instance metrics: ``level`` plus a fixed zig-zag of amplitude ``spread``."""
    out = []
    for i in range(N):
        wiggle = spread * (((i * 7 + phase) % 11) / 10.0 - 0.5)
        base = min(1.0, max(0.0, level + wiggle))
        out.append({m: round(min(1.0, base + 0.05 * j), 6) for j, m in enumerate(METRICS)})
    return out


def add_run(store: ResultStore, ranker: str, dataset: str, need: str, per_instance: list[dict[str, float]], *,
            model: str | None, train_need: str | None = None, complete: bool = True, seed: int = 0) -> None:
    """Store one run: JSONL records (in the store's own format) and the aggregate of their means."""
    key = RunKey(ranker, dataset, need, "test")
    records = [InstanceRecord(f"{dataset}-u{i:03d}", None, None, True, ("a",), ("a",), 0, 0, 0, m)
               for i, m in enumerate(per_instance)]
    jsonl, _ = store.run_paths(key)
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    jsonl.write_text("".join(json.dumps(record_to_json(r)) + "\n" for r in records), encoding="utf-8")
    means = {m: sum(r[m] for r in per_instance) / len(per_instance) for m in METRICS}
    prov = {"code_version": {"package": "0.1.0", "git_commit": "c0ffee", "dirty": False},
            "data_fingerprint": f"fp-{dataset}", "seed": seed, "model": model, "hardware": "test-cpu",
            "config": {"k": 30}, "train_need": train_need, "started_at": "2025-01-01T00:00:00Z",
            "finished_at": "2025-01-01T00:05:00Z", "strict": False, "limit": None}
    store.write_aggregate(RunResult(key, len(per_instance), means,
                                    {"invalid_rate": 0.0, "duplicate_rate": 0.0, "parse_failure_rate": 0.0,
                                     "pad_rate": 0.0}, prov, complete))


def build_fixed_store(root: Path) -> ResultStore:
    """Some methods of Tables 1, 2, 3, 7 and 9 (dense runs on ``kuairec-dense``); everything else stays missing."""
    store = ResultStore(root)
    add_run(store, "star", "kuairec", "interest", scores(0.40, 0.2, 1), model="all-MiniLM-L6-v2")
    add_run(store, "zero-shot", "kuairec", "interest", scores(0.30, 0.2, 2), model="smollm2")
    add_run(store, "flexrec", "kuairec", "interest", scores(0.55, 0.2, 3), model="smollm2", train_need="interest")
    add_run(store, "flexrec-noncausal", "kuairec", "interest", scores(0.45, 0.2, 4), model="smollm2",
            train_need="interest")
    add_run(store, "flexrec-dense", "kuairec-dense", "interest", scores(0.57, 0.2, 9), model="smollm2",
            train_need="interest")
    add_run(store, "flexrec-noncausal-dense", "kuairec-dense", "interest", scores(0.45, 0.2, 4),
            model="smollm2", train_need="interest")
    add_run(store, "zero-shot", "ml-1m", "interest", scores(0.50, 0.1, 5), model="Qwen/Qwen2.5-3B-Instruct")
    add_run(store, "flexrec", "kuairec", "novelty", scores(0.60, 0.1, 6), model="smollm2", train_need="novelty")
    add_run(store, "zero-shot", "kuairec", "novelty", scores(0.50, 0.1, 7), model="smollm2")
    add_run(store, "rec-r1", "esci", "esci", scores(0.42, 0.1, 8)[:7], model="smollm2", train_need="esci",
            complete=False)
    return store


def build_checkpoints(root: Path) -> Path:
    """A critic report for KuaiRec and validation logs for two Figure 3 curves."""
    critic = root / "critic" / "kuairec"
    critic.mkdir(parents=True)
    (critic / "report.json").write_text(json.dumps(  # the layout `flexbench train critic` writes
        {"settings": {"dataset": "kuairec", "fingerprint": "fp-kuairec", "config": {"seed": 0}},
         "complete": True, "best_epoch": 17, "n_examples": {"train": 800, "valid": 100, "test": 100},
         "valid": {"mse": 0.39, "mae": 0.44, "pearson_mean": 0.31, "pearson_var": 0.14, "n": 100},
         "test": {"mse": 0.41, "mae": 0.45, "pearson_mean": 0.29, "pearson_var": 0.12, "n": 100}}),
        encoding="utf-8")
    for label, slope in (("flexrec", 0.02), ("rec-r1", 0.005)):
        run = root / label / "kuairec" / "interest"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps(
            {"method": label, "dataset": "kuairec", "needs": ["interest"], "label": label}), encoding="utf-8")
        lines = [{"step": s, "split": "valid", "need": "interest", "ndcg@5": 0.3 + slope * s, "ndcg@10": 0.35 + slope * s,
                  "reward_mean": 0.1 * s} for s in range(0, 12, 2)]
        lines.append({"step": 3, "split": "train", "ndcg@5": 9.0, "ndcg@10": 9.0, "reward_mean": 0.0})
        (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return root
