"""Figures of the credit-assignment testbed: aggregation over seeds, paired tests, Markdown and PNG.

Everything here is a pure function of the runs' results (``credit_runs.run_job``
dicts) and the setting, so the Markdown table and the curves can be re-rendered
from the JSON that ``benchmarks/bench_credit.py --json`` writes.

* curves: validation NDCG@5 per evaluation step, mean and standard deviation
  (``ddof = 1``) over seeds, at the steps every seed evaluated;
* start / end: the first and the last validation NDCG@5 of each seed;
* test NDCG@5 after training on the test instances, and the paired test against
  the ``rec-r1`` row over (seed, test instance) pairs (same seeds, same
  instances; :func:`flexbench.tables.significance.paired_test`: a two-sided
  paired t-test and a Fisher randomization test, a mark only when both p < 0.05);
* steps to threshold: the first RL step whose validation NDCG@5 reaches the
  threshold, per seed (``—`` for a seed that never does), and the rollouts
  spent to get there (``steps * prompts_per_step * G``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BASELINE = "rec-r1"


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def curve_stats(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Mean and sd over seeds at the steps every seed evaluated."""
    per_seed = [dict(map(tuple, r["curve"])) for r in runs]
    steps = sorted(set.intersection(*(set(c) for c in per_seed)))
    stats = [_mean_sd([c[s] for c in per_seed]) for s in steps]
    return {"steps": steps, "mean": [m for m, _ in stats], "sd": [sd for _, sd in stats]}


def steps_to(curve: Sequence[Sequence[float]], threshold: float) -> int | None:
    """First RL step (>= 0) whose validation NDCG@5 reaches ``threshold``, or None."""
    return next((int(s) for s, v in curve if s >= 0 and v >= threshold), None)


def summarize(results: Sequence[Mapping[str, Any]], setting: Mapping[str, Any]) -> dict[str, Any]:
    """Per-row figures (module docstring), keyed by row label, in the order of first appearance."""
    from flexbench.tables.significance import paired_test

    rows: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        rows.setdefault(r["label"], []).append(r)
    base = {r["seed"]: r["test"] for r in rows.get(BASELINE, [])}
    per_rollout = setting["prompts_per_step"] * setting["group_size"]
    out = {}
    for label, runs in rows.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        reach = [steps_to(r["curve"], setting["threshold"]) for r in runs]
        test = [float(np.mean(list(r["test"].values()))) for r in runs]
        row = {"seeds": [r["seed"] for r in runs], "start": [r["curve"][0][1] for r in runs],
               "end": [r["curve"][-1][1] for r in runs], "test": test, "curves": {str(r["seed"]): r["curve"] for r in runs},
               "curve": curve_stats(runs), "steps_to_threshold": reach,
               "rollouts_to_threshold": [None if s is None else s * per_rollout for s in reach],
               "wall_s": float(np.mean([r["wall_s"] for r in runs])), "cpu_s": float(np.mean([r["cpu_s"] for r in runs])),
               "probe": _probe_means([r["probe"] for r in runs]),
               "kl_end": _tail_mean(runs, "kl"), "entropy_end": _tail_mean(runs, "entropy")}
        shared = [r for r in runs if r["seed"] in base]
        if label != BASELINE and shared:
            ids = [(r["seed"], i) for r in shared for i in sorted(r["test"]) if i in base[r["seed"]]]
            by_seed = {r["seed"]: r["test"] for r in shared}
            t = paired_test([by_seed[s][i] for s, i in ids], [base[s][i] for s, i in ids])
            row["vs_baseline"] = {"n": t.n, "mean_diff": t.mean_diff, "p_ttest": t.p_ttest,
                                  "p_fisher": t.p_fisher, "mark": t.mark()}
        out[label] = row
    return out


def _tail_mean(runs: Sequence[Mapping[str, Any]], key: str) -> float | None:
    """Mean over seeds of a training statistic over the last tenth of the RL steps (None if not logged)."""
    tails = [r.get("train", {}).get(key, []) for r in runs]
    tails = [t[-max(1, len(t) // 10):] for t in tails if t]
    return float(np.mean([np.nanmean(t) for t in tails])) if tails else None


def _probe_means(probes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def mean(key: str, sub: str | None = None) -> float | None:
        vals = [p.get(key) if sub is None else (p.get(key) or {}).get(sub) for p in probes]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    grads = [g for p in probes for g in p.get("grad_norms", [])]
    return {"sign_agreement": mean("sign_agreement"), "corr_adv_quality": mean("corr_adv_quality"),
            "adv_item_abs": mean("adv_item", "mean_abs"), "adv_other_abs": mean("adv_other", "mean_abs"),
            "weight_spread": mean("weight_spread"), "net_adv_abs": mean("net_adv_abs"),
            "grad_item": float(np.mean([g["item"] for g in grads])) if grads else None,
            "grad_other": float(np.mean([g["other"] for g in grads])) if grads else None}


def _pm(values: Sequence[float]) -> str:
    m, sd = _mean_sd(values)
    return f"{m:.3f} ± {sd:.3f}"


def _reach(row: Mapping[str, Any]) -> tuple[str, str]:
    hit = [s for s in row["steps_to_threshold"] if s is not None]
    n = len(row["steps_to_threshold"])
    if not hit:
        return f"— (0/{n})", "—"
    rollouts = [r for r in row["rollouts_to_threshold"] if r is not None]
    return f"{np.mean(hit):.0f} ({len(hit)}/{n})", f"{np.mean(rollouts):.0f}"


def _delta(row: Mapping[str, Any]) -> str:
    v = row.get("vs_baseline")
    if v is None:
        return "(reference)"
    return f"{v['mean_diff']:+.3f}{v['mark']} (p={max(v['p_ttest'], v['p_fisher']):.3g}, n={v['n']})"


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def markdown(summary: Mapping[str, Any], setting: Mapping[str, Any], meta: Mapping[str, Any],
             signals: Mapping[str, Any], references: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """The testbed's Markdown page: caption with the setting, results, signal quality, credit diagnostics."""
    lines = ["# Credit-assignment testbed", "", _caption(setting, meta, "rec-r1 +25 SFT" in summary), "", *_results(summary, setting, references),
             "", "![validation NDCG@5 curves](credit-testbed.png)", "", *_signal_table(signals), "",
             *_diagnostics(summary), "", _footer(meta), ""]
    return "\n".join(lines)


def _caption(setting: Mapping[str, Any], meta: Mapping[str, Any], warmup_row: bool) -> str:
    task, s = setting["task"], setting
    rollouts = s["steps"] * s["prompts_per_step"] * s["group_size"]
    name = "the quick setting (`--quick`)" if "--quick" in meta["command"] else "the full setting"
    sft = ("and 25 steps *in addition* to the RL budget in `rec-r1 +25 SFT`" if warmup_row else
           "(the `rec-r1 +25 SFT` row with the warm-up on top of the budget is in the full setting only)")
    return (f"Setting, {name}: tiny LLaMA built from a config ({meta['n_params']:,} parameters: hidden {s['hidden']}, "
            f"{s['layers']} layers, BPE vocabulary {meta['vocab']}), synthetic slate task (K = {task['k']}, "
            f"{task['n_train']} training users; gain = {task['grade_weight']} x (grade - 1) / 4 + "
            f"{task['topic_weight']} x history topic share + idiosyncrasy), observed-label density "
            f"{meta['density']:.1%} with idiosyncrasy sd {task['noise']} x (0.5, 1, 1.5, 2) by topic, the rest "
            f"imputed by the critic (or KNN); G = {s['group_size']}, {s['prompts_per_step']} prompts/step, "
            f"{s['steps']} RL steps ({rollouts} rollouts) for every method, lr {s['lr']:g}, KL {s['kl_coef']:g}, "
            f"entropy {s['entropy_coef']:g}, constrained decoding; {len(s['seed_list'])} seeds; validation NDCG@5 "
            f"on {s['eval_instances']} instances every {s['eval_every']} steps, test NDCG@5 on "
            f"{s['test_instances']} instances. Rec-R1's SFT warm-up is 0 in the `rec-r1` row (pure "
            f"sequence-level GRPO, the credit comparison) {sft}. Reference rows: untrained rankers "
            f"(`credit_task.reference_scores`). Mean ± sd over seeds; Δ: paired over seeds x test instances "
            f"(▲/▼: t-test and Fisher randomization both p < 0.05).")


def _results(summary: Mapping[str, Any], setting: Mapping[str, Any],
             references: Mapping[str, Mapping[str, float]] | None) -> list[str]:
    thr = setting["threshold"]
    lines = [(f"| method | NDCG@5 start | NDCG@5 end (valid) | test NDCG@5 | Δ test vs rec-r1 | steps to {thr:g} | "
              f"rollouts to {thr:g} |"), "|---|---:|---:|---:|---|---:|---:|"]
    for label, row in summary.items():
        steps, rollouts = _reach(row)
        lines.append(f"| {label} | {_pm(row['start'])} | {_pm(row['end'])} | {_pm(row['test'])} | {_delta(row)} | "
                     f"{steps} | {rollouts} |")
    for name, ref in (references or {}).get("valid", {}).items():
        test = references.get("test", {}).get(name)
        lines.append(f"| *{name} (reference, no training)* | | {ref:.3f} | {_f(test)} | | | |")
    return lines


def _signal_table(signals: Mapping[str, Any]) -> list[str]:
    lines = ["## Training gains by signal", "",
             ("Over the training slate items whose gain is not observed (what the imputation decides); "
              "`NDCG@5 by signal` ranks each training instance by its training gains and scores it with the true "
              "gains (the ceiling of a policy that follows the signal perfectly)."), "",
             "| signal | RMSE | Pearson | NDCG@5 by signal | Pearson(var, sq. error) |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {_f(s['rmse'])} | {_f(s['pearson'])} | {_f(s['ndcg5'])} | {_f(s.get('var_corr'))} |"
              for name, s in signals.items()]
    return lines


def _diagnostics(summary: Mapping[str, Any]) -> list[str]:
    lines = ["## Credit diagnostics", "",
             ("Per RL step, averaged over the run and seeds (`benchmarks/credit_runs.py: CreditProbe`): sign "
              "agreement of each valid entry's advantage with its true per-decision quality (its true gain minus "
              "the mean true gain of the items still unranked), their correlation, mean |advantage| of item "
              "tokens and of other tokens, the policy-gradient norm of each token class alone, the within-group "
              "sd of the uncertainty weights and the mean |net advantage| of a group (its token-mean advantage: "
              "0 for plain group-normalised advantages, non-zero once rollouts are weighted); KL to the reference "
              "and the full-vocabulary entropy over the last tenth of the steps. PPO rows: advantages come from "
              "GAE inside the loop (not probed)."), "",
             ("| method | sign agreement | corr(A, q) | mean abs A item | mean abs A other | grad item | grad other | "
              "weight sd | abs net A | KL end | entropy end |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, row in summary.items():
        p = row["probe"]
        lines.append(f"| {label} | {_f(p['sign_agreement'])} | {_f(p['corr_adv_quality'])} | {_f(p['adv_item_abs'])} "
                     f"| {_f(p['adv_other_abs'])} | {_f(p['grad_item'], '.3g')} | {_f(p['grad_other'], '.3g')} | "
                     f"{_f(p['weight_spread'])} | {_f(p['net_adv_abs'])} | {_f(row['kl_end'])} | "
                     f"{_f(row['entropy_end'], '.2f')} |")
    return lines


def _footer(meta: Mapping[str, Any]) -> str:
    total = meta.get("cpu_s_total")
    cpu = ("" if total is None else f"; {total:.0f} CPU-s in all (processes and their workers), i.e. "
           f"{total / meta['cpus'] / 60:.1f} min of {meta['cpus']} cores")
    return (f"Run: `{meta['command']}`; wall time {meta['wall_s'] / 60:.1f} min with {meta['workers']} worker "
            f"processes (one torch thread each){cpu}; load average {meta['load_start']:.1f} at the start and "
            f"{meta['load_end']:.1f} at the end on {meta['cpus']} cores (other jobs shared the machine when it "
            f"exceeds {meta['cpus']}); mean per run {meta['run_wall_s']:.0f} s wall / {meta['run_cpu_s']:.0f} s "
            f"CPU. Critic: {meta['critic']}.")


PANELS = (("Reward formulation (cf. paper Figure 3)", "reward"), ("Reward signal (cf. paper Figure 4)", "signal"))


def plot(summary: Mapping[str, Any], panels: Mapping[str, Sequence[str]], path: Path, title: str) -> None:
    """Two panels of validation NDCG@5 curves (mean line, ±1 sd band over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, (name, key) in zip(axes, PANELS, strict=True):
        for label in panels.get(key, ()):
            if label not in summary:
                continue
            c = summary[label]["curve"]
            x, m, sd = np.asarray(c["steps"]), np.asarray(c["mean"]), np.asarray(c["sd"])
            (line,) = ax.plot(x, m, label=label)
            ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.15)
        ax.set_title(name)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("validation NDCG@5")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
