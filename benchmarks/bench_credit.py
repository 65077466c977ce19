"""Credit-assignment testbed: item-level causal credit vs sequence- and rank-level credit, critic vs KNN.

The paper's central comparison (Tables 7 and 8, Figures 3 and 4) measured where
a laptop can rerun it. Every method trains with the real loop
(:class:`flexbench.train.loop.PolicyTrainer`), the real rewards, advantages,
uncertainty weights, critic (a deep ensemble of
:mod:`flexbench.train.signal.critic` critics, :mod:`flexbench.train.signal.ensemble`,
trained here on the observed labels) and KNN imputers, from the same tiny LLaMA
(built from a config, no download) on the synthetic slate task of
``benchmarks/credit_task.py`` (relevance readable from the prompt; about 5 % of
training gains observed, with noise, and one noisy topic observed five times
less often than the others, where the imputation must extrapolate; the critic or
KNN imputes the rest). Decoding is constrained to permutations of the candidate
labels, and every log-probability is taken under that constrained distribution.

Every method gets the same RL budget (``steps * prompts_per_step * G``
rollouts) and the same seeds (a seed fixes the initial weights, the prompt order
and the sampling). Two starts: the seed's random initial weights (``init``;
Rec-R1 then does its 25 SFT warm-up steps first, as in the paper) and, in the
full setting, one shared SFT checkpoint per seed (25 SFT steps on the optimal
lists of the observed+critic training gains; every method continues from it
with RL only). The full setting also runs flexrec and rec-r1 with the training
reward cut at 5 (the evaluation's NDCG@5) beside the default 10, which covers
the whole slate here (K = 8).

Outputs: validation NDCG@5 per evaluation step (mean and sd over seeds), steps
and rollouts to a threshold, final test NDCG@5 with a seed-level paired t-test
against ``rec-r1`` and against ``flexrec-rawcritic`` of the same start (the unit
of replication is the training run), the critic's calibration, a PNG of the
curves, the Markdown page (``--md``, caption states the setting) and ``--json``
(per method: start, end, per-seed curves, test scores, probe figures). The
figures are defined in ``benchmarks/credit_report.py``; the credit probe in
``benchmarks/credit_runs.py``.

    .venv/bin/python benchmarks/bench_credit.py --quick --json out.json     # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_credit.py --json credit.json \\
        --md leaderboards/credit-testbed.md --png leaderboards/credit-testbed.png   # the full setting
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Row:
    """One row of the testbed: a method of :data:`flexbench.train.methods.METHODS`, its gains, start and cutoff.

    ``start`` is ``init`` (the random initial weights of the seed) or ``sft`` (the
    seed's shared SFT checkpoint: :data:`SFT_STEPS` supervised steps on the optimal
    lists of the observed+critic training gains, the same start for every method).
    """

    label: str
    method: str
    signal: str = "observed+critic"
    warmup: int = 0
    start: str = "init"
    cutoff: int | None = 10
    panels: tuple[str, ...] = ("reward",)
    quick: bool = True


SFT_STEPS = 25
"""Rec-R1's warm-up in the paper, and the length of the shared SFT start."""
SFT_LABEL = "sft start (25 steps)"
BASELINES = ("rec-r1", "flexrec-rawcritic")
"""The rows every other row of the same start is tested against, at the level of seeds."""


def _core(start: str, quick: bool) -> tuple[Row, ...]:
    """The eight compared rows from ``start`` (Rec-R1 keeps its 25-step warm-up from the random start)."""
    tag, key = ("", "") if start == "init" else (" (SFT start)", "-sft")
    reward, signal, both = (f"reward{key}",), (f"signal{key}",), (f"reward{key}", f"signal{key}")
    return (Row(f"flexrec{tag}", "flexrec", start=start, panels=both, quick=quick),
            Row(f"flexrec-seqweight{tag}", "flexrec-seqweight", start=start, panels=signal, quick=quick),
            Row(f"flexrec-rawcritic{tag}", "flexrec-rawcritic", "raw-critic", start=start, panels=signal,
                quick=quick),
            Row(f"flexrec-userknn{tag}", "flexrec-userknn", "user-knn", start=start, panels=signal, quick=quick),
            Row(f"flexrec-noncausal{tag}", "flexrec-noncausal", start=start, panels=reward, quick=quick),
            Row(f"flexrec-independent{tag}", "flexrec-independent", start=start, panels=reward, quick=quick),
            Row(f"rec-r1{tag}", "rec-r1", warmup=SFT_STEPS if start == "init" else 0, start=start, panels=reward,
                quick=quick),
            Row(f"rank-grpo{tag}", "rank-grpo", start=start, panels=reward, quick=quick))


ROWS: tuple[Row, ...] = (
    *_core("init", True),
    *_core("sft", False),
    Row("flexrec @5", "flexrec", cutoff=5, panels=(), quick=False),
    Row("rec-r1 @5", "rec-r1", warmup=SFT_STEPS, cutoff=5, panels=(), quick=False),
)


@dataclass(frozen=True)
class Setting:
    """The training and evaluation setting every row shares."""

    steps: int = 100
    prompts_per_step: int = 4
    group_size: int = 8
    lr: float = 3e-3
    kl_coef: float = 0.01
    entropy_coef: float = 0.005
    eval_every: int = 10
    eval_instances: int = 64
    test_instances: int = 64
    hidden: int = 64
    layers: int = 2
    seeds: int = 5
    threshold: float = 0.7
    critic_epochs: int = 30
    critic_members: int = 5
    sft_steps: int = SFT_STEPS

    def __post_init__(self) -> None:
        if self.steps < 2 or self.seeds < 1 or not 0 < self.threshold <= 1 or self.critic_members < 1:
            raise ValueError("steps >= 2, seeds >= 1, threshold in (0, 1] and critic_members >= 1 are required")


QUICK = Setting(steps=40, lr=5e-3, eval_every=10, eval_instances=32, seeds=3, critic_epochs=15, critic_members=3)


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the 10-minute setting (40 steps, 3 seeds, the 8 rows "
                   "from the random start)")
    p.add_argument("--json", type=Path, help="write the figures as JSON")
    p.add_argument("--md", type=Path, help="write the Markdown page (e.g. leaderboards/credit-testbed.md)")
    p.add_argument("--png", type=Path, help="write the curves (e.g. leaderboards/credit-testbed.png)")
    p.add_argument("--rows", help="comma-separated row labels (default: the setting's rows)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 5; --quick 3)")
    p.add_argument("--steps", type=int, help="RL steps per run")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2, one torch thread each)")
    p.add_argument("--work-dir", type=Path, help="keep data, critic and runs here (default: a temporary dir); "
                   "rerun with the same directory to resume: finished jobs are not run again")
    p.add_argument("--from-json", type=Path, help="re-render --md/--png from a JSON this script wrote (no training)")
    return p.parse_args(argv)


def _setting(args: argparse.Namespace) -> Setting:
    base = QUICK if args.quick else Setting()
    changes = {k: v for k, v in (("seeds", args.seeds), ("steps", args.steps)) if v is not None}
    return dataclasses.replace(base, **changes)


def _rows(args: argparse.Namespace) -> list[Row]:
    if args.rows:
        wanted = [r.strip() for r in args.rows.split(",")]
        known = {r.label: r for r in ROWS}
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise SystemExit(f"--rows: unknown {unknown}; known: {', '.join(known)}")
        return [known[w] for w in wanted]
    return [r for r in ROWS if r.quick or not args.quick]


def calibration(pred_var: np.ndarray, sq_err: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Predicted variance vs observed squared error in ``bins`` quantile bins of the predicted variance.

    A calibrated variance has ``mean sq. error ~ mean predicted variance`` in every
    bin (Kuleshov et al. 2018 for regression; here the binned reliability form).
    """
    order = np.argsort(pred_var, kind="stable")
    return [{"pred_var": float(pred_var[idx].mean()), "sq_err": float(sq_err[idx].mean()), "n": len(idx)}
            for idx in np.array_split(order, bins) if len(idx)]


def signal_quality(dataset: Any, critic_dir: Path, n: int = 300) -> dict[str, dict[str, Any]]:
    """Training gains of each signal against the true gains, on the unobserved training slate items.

    ``observed+critic`` is the deep ensemble the runs use; ``single critic`` its
    first member alone (its variance is the aleatoric head only): the calibration
    bins show what the ensemble's disagreement term adds.
    """
    from flexbench.metrics import ideal_order, ndcg_at
    from flexbench.train.signal.ensemble import member_dir
    from flexbench.train.signal.gains import ObservedValues, make_gain_provider

    instances = dataset.instances("train", limit=n)
    labels = dataset.labels("interest", "train")
    true = np.array([labels[x.instance_id].gains for x in instances])
    observed = ObservedValues(dataset)
    hidden = np.isnan(np.array([observed.lookup(x.user_id, x.candidate_ids) for x in instances]))
    out = {}
    sources = (("observed+critic", "observed+critic", critic_dir),
               ("single critic", "observed+critic", member_dir(critic_dir, 0)),
               ("user-knn", "user-knn", None), ("item-knn", "item-knn", None), ("labels", "labels", None))
    for name, signal, critic in sources:
        provider = make_gain_provider(dataset, "interest", signal, critic)
        pairs = [provider.candidate_gains(x, "interest") for x in instances]
        g, v = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        err = (g - true)[hidden]
        order = np.argsort(-g, axis=1, kind="stable")
        ndcg5 = float(ndcg_at(np.take_along_axis(true, order, 1), ideal_order(true), 5).mean())
        spread = v[hidden].std() > 0
        out[name] = {"rmse": float(np.sqrt(np.mean(err**2))), "pearson": float(np.corrcoef(g[hidden], true[hidden])[0, 1]),
                     "ndcg5": ndcg5, "var_corr": float(np.corrcoef(v[hidden], err**2)[0, 1]) if spread else None,
                     "calibration": calibration(v[hidden], err**2) if spread else None}
    return out


def _prepare(work: Path, setting: Setting) -> dict[str, Any]:
    """Write the task, train the tokenizer and the critic ensemble; return what the report and the jobs need."""
    from credit_task import TaskConfig, observed_density, tiny_model, train_tokenizer, write_task
    from rich.console import Console

    from flexbench.train.signal.critic import CriticConfig
    from flexbench.train.signal.ensemble import fit_ensemble

    task = TaskConfig()
    dataset = write_task(work / "data", task)
    tokenizer = train_tokenizer(dataset)
    tokenizer.save_pretrained(work / "tokenizer")
    fits = fit_ensemble(dataset, CriticConfig(epochs=setting.critic_epochs, seed=0), work / "critic",
                        setting.critic_members, resume=True, console=Console(quiet=True))  # same data: reused
    test = [f.report["test"] for f in fits]
    n_params = sum(p.numel() for p in tiny_model(tokenizer, hidden=setting.hidden, layers=setting.layers).parameters())
    return {"task": task, "dataset": dataset, "density": observed_density(dataset), "vocab": len(tokenizer),
            "n_params": n_params,
            "critic": (f"deep ensemble of {len(fits)} critics; per member on held-out observed labels: test MSE "
                       f"{np.mean([t['mse'] for t in test]):.3f}, Pearson(mean, y) "
                       f"{np.mean([t['pearson_mean'] for t in test]):.2f}, Pearson(var, sq. error) "
                       f"{_fmt(_mean_or_none([t.get('pearson_var') for t in test]))}")}


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def references(dataset: Any, task: Any, setting: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Untrained reference rankers (:func:`credit_task.reference_scores`) on the validation and test instances."""
    from credit_task import reference_scores

    return {split: reference_scores(dataset, task, split, setting[key])
            for split, key in (("valid", "eval_instances"), ("test", "test_instances"))}


def _references_of(doc: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The references of a JSON written before they were stored: the task is regenerated from its settings."""
    from credit_task import TaskConfig, write_task

    task = TaskConfig(**doc["setting"]["task"])
    with tempfile.TemporaryDirectory(prefix="credit-task-") as tmp:
        return references(write_task(Path(tmp), task), task, doc["setting"])


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its reaped children (the worker processes)."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _run_dir(work: Path, label: str, seed: int) -> Path:
    return work / "runs" / label.replace(" ", "_").replace("(", "").replace(")", "") / f"seed{seed}"


def _run_all(jobs: list[Any], workers: int) -> list[dict[str, Any]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from credit_runs import run_job_cached

    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_job_cached, job): job for job in jobs}
        for n, future in enumerate(as_completed(futures), 1):
            r = future.result()
            results.append(r)
            print(f"[{n}/{len(jobs)}] {r['label']} seed {r['seed']}: NDCG@5 {r['curve'][0][1]:.3f} -> "
                  f"{r['curve'][-1][1]:.3f}, test {np.mean(list(r['test'].values())):.3f} "
                  f"({r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU{', from an earlier run' if r.get('cached') else ''})",
                  flush=True)
    order = {(j.label, j.seed): i for i, j in enumerate(jobs)}
    return sorted(results, key=lambda r: order[(r["label"], r["seed"])])


def _render(doc: dict[str, Any], args: argparse.Namespace) -> None:
    """Write the Markdown page (``--md``) and the curves (``--png``, default beside the page) of ``doc``."""
    import credit_report as report

    summary, setting, meta, signals = doc["methods"], doc["setting"], doc["meta"], doc["signals"]
    refs = doc.get("references")
    known = {r.label: r for r in ROWS}
    panels = {key: [m for m in summary if key in getattr(known.get(m), "panels", ())] for _, key in report.PANELS}
    if args.md:
        args.md.write_text(report.markdown(summary, setting, meta, signals, refs))
    if args.png or args.md:
        png = args.png or args.md.with_suffix(".png")
        report.plot(summary, panels, png, f"credit testbed: {setting['steps']} RL steps, "
                                          f"{len(setting['seed_list'])} seeds")
    print(report.markdown(summary, setting, meta, signals, refs))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the testbed (or, with ``--from-json``, only re-render it) and write its outputs; returns the JSON."""
    import credit_report as report
    from credit_runs import Job

    args = _args(argv)
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        if "references" not in doc:
            doc["references"] = _references_of(doc)
        if args.json:
            args.json.write_text(json.dumps(doc, indent=1))
        _render(doc, args)
        return doc
    setting, rows = _setting(args), _rows(args)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="credit-testbed-"))
    work.mkdir(parents=True, exist_ok=True)
    prep = _prepare(work, setting)
    print(f"task, tokenizer and critic ready ({time.perf_counter() - started:.0f} s)", flush=True)
    signals = signal_quality(prep["dataset"], work / "critic")
    print(f"signal quality measured ({time.perf_counter() - started:.0f} s)", flush=True)
    seeds = list(range(setting.seeds))
    shared = {**dataclasses.asdict(setting), "k": prep["task"].k, "seed_list": seeds,
              "task": prep["task"].to_dict()}
    def job(r: Row, s: int) -> Job:
        state = str(_run_dir(work, SFT_LABEL, s) / "policy-state.pt") if r.start == "sft" else None
        return Job(r.label, r.method, r.signal, r.warmup, s, shared, str(work / "data"), str(work / "tokenizer"),
                   str(work / "critic"), str(_run_dir(work, r.label, s)), start_state=state, reward_cutoff=r.cutoff)

    sft_rows = [Row(SFT_LABEL, "sft", quick=False)] if any(r.start == "sft" for r in rows) else []
    print(f"credit testbed: {len(rows)} rows x {len(seeds)} seeds, {setting.steps} RL steps each"
          f"{', after the shared SFT start' if sft_rows else ''}, {args.workers} workers, work dir {work}", flush=True)
    results = _run_all([replace(job(r, s), save_state=True) for r in sft_rows for s in seeds], args.workers)
    results += _run_all([job(r, s) for r in rows for s in seeds], args.workers)
    summary = report.summarize(results, shared)
    meta = {"command": "python benchmarks/bench_credit.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "wall_s": time.perf_counter() - started, "workers": args.workers, "cpus": os.cpu_count(),
            "load_start": load_start, "load_end": os.getloadavg()[0], "density": prep["density"],
            "vocab": prep["vocab"], "n_params": prep["n_params"], "critic": prep["critic"],
            "run_wall_s": float(np.mean([r["wall_s"] for r in results])),
            "run_cpu_s": float(np.mean([r["cpu_s"] for r in results])), "cpu_s_total": _cpu_seconds()}
    doc = {"setting": shared, "meta": meta, "signals": signals, "methods": summary,
           "references": references(prep["dataset"], prep["task"], shared)}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    _render(doc, args)
    return doc


if __name__ == "__main__":
    main()
