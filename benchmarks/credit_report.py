"""Figures of the credit-assignment testbed: aggregation over seeds, paired tests, Markdown and PNG.

Everything here is a pure function of the runs' results (``credit_runs.run_job``
dicts) and the setting, so the Markdown table and the curves can be re-rendered
from the JSON that ``benchmarks/bench_credit.py --json`` writes.

* curves: validation NDCG@5 per evaluation step, mean and standard deviation
  (``ddof = 1``) over seeds, at the steps every seed evaluated;
* start / end: the first and the last validation NDCG@5 of each seed;
* test NDCG@5 after training on the test instances, and the seed-level test
  against the ``rec-r1`` and ``flexrec-rawcritic`` rows of the same start
  (:func:`seed_test`): the unit of replication is the training run, so each
  seed contributes one number (its mean test NDCG@5) and the pairs are seeds
  (a seed fixes the initial weights, the prompt order and the sampling seeds of
  both runs); a two-sided paired t-test with ``n - 1`` degrees of freedom, and
  the smallest difference the design detects with 80 % power at alpha 0.05;
* steps to threshold: the first RL step whose validation NDCG@5 reaches the
  threshold, per seed (``—`` for a seed that never does), and the rollouts
  spent to get there (``steps * prompts_per_step * G``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BASELINES = ("rec-r1", "flexrec-rawcritic")
ALPHA, POWER = 0.05, 0.8


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


def seed_test(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Paired t-test over seeds of per-seed means ``a`` vs ``b`` (same seeds, same order), and the MDE.

    ``mde = (t_{1 - alpha/2, n-1} + t_{power, n-1}) * sd(a - b) / sqrt(n)``: the
    smallest true mean difference this many seeds detect with the given power
    (the usual normal-theory approximation with t quantiles).
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n < 2:
        return {"n": n, "mean_diff": float(d.mean()) if n else None, "p": None, "mde": None}
    sd = float(d.std(ddof=1))
    p = float(stats.ttest_rel(a, b).pvalue) if sd > 1e-12 else (1.0 if abs(d.mean()) < 1e-12 else 0.0)
    mde = (stats.t.ppf(1 - ALPHA / 2, n - 1) + stats.t.ppf(POWER, n - 1)) * sd / np.sqrt(n)
    return {"n": n, "mean_diff": float(d.mean()), "sd_diff": sd, "p": p, "mde": float(mde),
            "test": f"paired t over {n} seeds"}


def _suffix(label: str) -> str:
    """The start tag of a row label (``" (SFT start)"`` or ``""``)."""
    return label[label.index(" ("):] if " (" in label else ""


def summarize(results: Sequence[Mapping[str, Any]], setting: Mapping[str, Any]) -> dict[str, Any]:
    """Per-row figures (module docstring), keyed by row label, in the order of first appearance."""
    rows: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        rows.setdefault(r["label"], []).append(r)
    per_rollout = setting["prompts_per_step"] * setting["group_size"]
    out = {}
    for label, runs in rows.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        reach = [steps_to(r["curve"], setting["threshold"]) for r in runs]
        test = [float(np.mean(list(r["test"].values()))) for r in runs]
        out[label] = {"seeds": [r["seed"] for r in runs], "start": [r["curve"][0][1] for r in runs],
                      "end": [r["curve"][-1][1] for r in runs], "test": test,
                      "curves": {str(r["seed"]): r["curve"] for r in runs},
                      "curve": curve_stats(runs), "steps_to_threshold": reach,
                      "rollouts_to_threshold": [None if s is None else s * per_rollout for s in reach],
                      "wall_s": float(np.mean([r["wall_s"] for r in runs])),
                      "cpu_s": float(np.mean([r["cpu_s"] for r in runs])),
                      "probe": _probe_means([r["probe"] for r in runs]),
                      "kl_end": _tail_mean(runs, "kl"), "entropy_end": _tail_mean(runs, "entropy"),
                      "observed_share": _tail_mean(runs, "reward_var_observed", tail=1.0)}
    for label, row in out.items():
        row["vs"] = {}
        for base in BASELINES:
            ref = out.get(base + _suffix(label))
            if ref is None or base + _suffix(label) == label:
                continue
            seeds = [s for s in row["seeds"] if s in ref["seeds"]]
            mine = dict(zip(row["seeds"], row["test"], strict=True))
            theirs = dict(zip(ref["seeds"], ref["test"], strict=True))
            row["vs"][base] = seed_test([mine[s] for s in seeds], [theirs[s] for s in seeds])
    return out


def _tail_mean(runs: Sequence[Mapping[str, Any]], key: str, tail: float = 0.1) -> float | None:
    """Mean over seeds of a training statistic over the last ``tail`` of the RL steps (None if not logged)."""
    tails = [[v for v in r.get("train", {}).get(key, []) if np.isfinite(v)] for r in runs]  # NaN: not logged
    tails = [t[-max(1, int(len(t) * tail)):] for t in tails if t]
    return float(np.mean([np.mean(t) for t in tails])) if tails else None


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


def _delta(row: Mapping[str, Any], base: str) -> str:
    v = row.get("vs", {}).get(base)
    if v is None:
        return "(reference)" if base == row.get("_base_of") else ""
    if v["p"] is None:
        return f"{v['mean_diff']:+.3f}"
    mark = ("▲" if v["mean_diff"] > 0 else "▼") if v["p"] < ALPHA else ""
    return f"{v['mean_diff']:+.3f}{mark} (p={v['p']:.2g})"


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def markdown(summary: Mapping[str, Any], setting: Mapping[str, Any], meta: Mapping[str, Any],
             signals: Mapping[str, Any], references: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """The testbed's Markdown page: caption with the setting, results, signal quality, credit diagnostics."""
    lines = ["# Credit-assignment testbed", "", _caption(setting, meta), "", *_results(summary, setting, references),
             "", *_power(summary), "", "![validation NDCG@5 curves](credit-testbed.png)", "",
             *_signal_table(signals), "", *_calibration(signals), "", *_diagnostics(summary), "", _footer(meta), ""]
    return "\n".join(lines)


def _caption(setting: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    task, s = setting["task"], setting
    rollouts = s["steps"] * s["prompts_per_step"] * s["group_size"]
    name = "the quick setting (`--quick`)" if "--quick" in meta["command"] else "the full setting"
    rare = ("red", "blue", "green", "gold")[task.get("rare_topic", 3)]
    return (f"Setting, {name}: tiny LLaMA built from a config ({meta['n_params']:,} parameters: hidden {s['hidden']}, "
            f"{s['layers']} layers, BPE vocabulary {meta['vocab']}), synthetic slate task (K = {task['k']}, "
            f"{task['n_train']} training users; gain = {task['grade_weight']} x (grade - 1) / 4 + "
            f"{task['topic_weight']} x history topic share + idiosyncrasy), observed-label density "
            f"{meta['density']:.1%} (topic {rare!r}, the noisiest, observed {task.get('rare_factor', 1):g}x as often as "
            f"the others) with idiosyncrasy sd {task['noise']} x (0.5, 1, 1.5, 2) by topic, the rest imputed by "
            f"the critic ensemble (or KNN); G = {s['group_size']}, {s['prompts_per_step']} prompts/step, "
            f"{s['steps']} RL steps ({rollouts} rollouts) for every method, lr {s['lr']:g}, KL {s['kl_coef']:g}, "
            f"entropy {s['entropy_coef']:g}, constrained decoding scored under the constrained distribution, "
            f"training reward NDCG@10 (the whole slate) unless the row says @5; {len(s['seed_list'])} seeds; "
            f"validation NDCG@5 on {s['eval_instances']} instances every {s['eval_every']} steps, test NDCG@5 on "
            f"{s['test_instances']} instances. Rec-R1 from the random start does its {s.get('sft_steps', 25)} SFT "
            f"warm-up steps first (on top of the RL budget, as in the paper); rows marked (SFT start) all continue "
            f"from one shared SFT checkpoint per seed ({s.get('sft_steps', 25)} SFT steps), Rec-R1 included. "
            f"Reference rows: untrained rankers (`credit_task.reference_scores`). Mean ± sd over seeds; Δ: "
            f"difference of the per-seed test means against the named row of the same start, paired t-test over "
            f"seeds (▲/▼: p < {ALPHA:g}).")


def _results(summary: Mapping[str, Any], setting: Mapping[str, Any],
             references: Mapping[str, Mapping[str, float]] | None) -> list[str]:
    thr = setting["threshold"]
    lines = [(f"| method | NDCG@5 start | NDCG@5 end (valid) | test NDCG@5 | Δ test vs rec-r1 | Δ test vs "
              f"flexrec-rawcritic | steps to {thr:g} | rollouts to {thr:g} |"), "|---|---:|---:|---:|---|---|---:|---:|"]
    for label, row in summary.items():
        steps, rollouts = _reach(row)
        cells = [_delta({**row, "_base_of": b if label == b + _suffix(label) else None}, b) for b in BASELINES]
        lines.append(f"| {label} | {_pm(row['start'])} | {_pm(row['end'])} | {_pm(row['test'])} | {cells[0]} | "
                     f"{cells[1]} | {steps} | {rollouts} |")
    for name, ref in (references or {}).get("valid", {}).items():
        test = references.get("test", {}).get(name)
        lines.append(f"| *{name} (reference, no training)* | | {ref:.3f} | {_f(test)} | | | | |")
    return lines


def _power(summary: Mapping[str, Any]) -> list[str]:
    """What the design can detect: the MDE of each seed-level comparison (median over rows)."""
    mdes = {b: [v["vs"][b]["mde"] for v in summary.values() if v.get("vs", {}).get(b, {}).get("mde") is not None]
            for b in BASELINES}
    seeds = max((len(v["seeds"]) for v in summary.values()), default=0)
    parts = [f"vs {b}: median {np.median(m):.3f} (range {min(m):.3f}-{max(m):.3f})" for b, m in mdes.items() if m]
    if not parts:
        return []
    return [f"**What this design can detect.** With {seeds} seeds per row, the smallest difference in test NDCG@5 "
            f"a paired t-test over seeds detects with {POWER:.0%} power at alpha {ALPHA:g} is "
            + "; ".join(parts) + ". Differences below that are not claimed."]


def _signal_table(signals: Mapping[str, Any]) -> list[str]:
    lines = ["## Training gains by signal", "",
             ("Over the training slate items whose gain is not observed (what the imputation decides); "
              "`NDCG@5 by signal` ranks each training instance by its training gains and scores it with the true "
              "gains (the ceiling of a policy that follows the signal perfectly). `observed+critic` is the deep "
              "ensemble the runs use, `single critic` its first member alone."), "",
             "| signal | RMSE | Pearson | NDCG@5 by signal | Pearson(var, sq. error) |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {name} | {_f(s['rmse'])} | {_f(s['pearson'])} | {_f(s['ndcg5'])} | {_f(s.get('var_corr'))} |"
              for name, s in signals.items()]
    return lines


def _calibration(signals: Mapping[str, Any]) -> list[str]:
    """Binned predicted variance vs squared error of each signal that has a variance."""
    rows = [(name, s["calibration"]) for name, s in signals.items() if s.get("calibration")]
    if not rows:
        return []
    lines = ["## Calibration of the predicted variance", "",
             ("Unobserved training pairs in five bins of predicted variance (equal counts, lowest first): mean "
              "predicted variance / mean squared error of the imputed gain. Calibrated: the two agree in every "
              "bin."), "", "| signal | " + " | ".join(f"bin {i + 1}" for i in range(len(rows[0][1]))) + " |",
             "|---|" + "---:|" * len(rows[0][1])]
    lines += [f"| {name} | " + " | ".join(f"{b['pred_var']:.3f} / {b['sq_err']:.3f}" for b in bins) + " |"
              for name, bins in rows]
    return lines


def _diagnostics(summary: Mapping[str, Any]) -> list[str]:
    lines = ["## Credit diagnostics", "",
             ("Per RL step, averaged over the run and seeds (`benchmarks/credit_runs.py: CreditProbe`): sign "
              "agreement of each valid entry's advantage with its true per-decision quality (its true gain minus "
              "the mean true gain of the items still unranked), their correlation, mean |advantage| of item "
              "tokens and of other tokens, the policy-gradient norm of each token class alone, the within-group "
              "sd of the uncertainty weights and the mean |net advantage| of a group (its token-mean advantage: "
              "0 for group-normalised advantages, with or without the weighted baseline); KL to the reference "
              "and the entropy of the constrained distribution over the last tenth of the steps; the share of a "
              "group's reward variance that observed labels explain (the rest comes from imputed gains), over "
              "all RL steps. PPO rows: advantages come from GAE inside the loop (not probed)."), "",
             ("| method | sign agreement | corr(A, q) | mean abs A item | mean abs A other | grad item | grad other | "
              "weight sd | abs net A | KL end | entropy end | observed share |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, row in summary.items():
        p = row["probe"]
        lines.append(f"| {label} | {_f(p['sign_agreement'])} | {_f(p['corr_adv_quality'])} | {_f(p['adv_item_abs'])} "
                     f"| {_f(p['adv_other_abs'])} | {_f(p['grad_item'], '.3g')} | {_f(p['grad_other'], '.3g')} | "
                     f"{_f(p['weight_spread'])} | {_f(p['net_adv_abs'])} | {_f(row['kl_end'])} | "
                     f"{_f(row['entropy_end'], '.2f')} | {_f(row.get('observed_share'), '.2f')} |")
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


PANELS = (("Reward formulation, random start (cf. paper Figure 3)", "reward"),
          ("Reward signal, random start (cf. paper Figure 4)", "signal"),
          ("Reward formulation, shared SFT start", "reward-sft"),
          ("Reward signal, shared SFT start", "signal-sft"))


def plot(summary: Mapping[str, Any], panels: Mapping[str, Sequence[str]], path: Path, title: str) -> None:
    """Panels of validation NDCG@5 curves (mean line, ±1 sd band over seeds); a second row for the SFT start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(name, key) for name, key in PANELS if any(m in summary for m in panels.get(key, ()))] or list(PANELS[:2])
    rows = (len(shown) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.5 * rows), sharey=True, squeeze=False)
    for ax, (name, key) in zip(axes.flat, shown, strict=False):
        for label in panels.get(key, ()):
            if label not in summary:
                continue
            c = summary[label]["curve"]
            x, m, sd = np.asarray(c["steps"]), np.asarray(c["mean"]), np.asarray(c["sd"])
            (line,) = ax.plot(x, m, label=label)
            ax.fill_between(x, m - sd, m + sd, color=line.get_color(), alpha=0.12)
        ax.set_title(name)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("validation NDCG@5")
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
