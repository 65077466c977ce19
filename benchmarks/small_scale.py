"""Small-scale reproduction of Table 1 with a real LLM on CPU (issue 13, item 2; docs/SMALL_SCALE.md).

Trains TALLRec, Rec-R1, Rank-GRPO and FlexRec with the ``cpu-small`` preset
(SmolLM2-135M-Instruct) on one dataset and need (default: the bundled KuaiRec
sample, Maximizing Interest), evaluates every trained policy and zero-shot
SmolLM2 on the same first ``--limit`` test instances with the same decoding,
tests each row against zero-shot (paired t-test and Fisher randomization over
instances, :func:`flexbench.leaderboard.significance.paired_pvalues`) and
writes a Markdown table whose caption states the setting, with the training
curves copied beside it.

Stages, each resumable (rerun the same command after an interruption):

* ``train``: ``flexbench train M --dataset D --need N --config <preset>`` one
  method at a time; ``flexbench train`` resumes from its checkpoint, and the
  driver adds each invocation's wall time to the state file
  ``<data>/small-scale/<dataset>-<need>.json``;
* ``eval``: ``flexbench eval ROW --limit L`` (stored records resume);
* ``table``: reads the stored per-instance records and writes the Markdown.

::

    .venv/bin/python benchmarks/small_scale.py                      # everything, resumable
    .venv/bin/python benchmarks/small_scale.py --stages table       # re-render from stored runs
    .venv/bin/python benchmarks/small_scale.py --dry-run            # print the commands only

Decoding is the same for every row: ``--decoding constrained`` (the default:
permutation-constrained greedy decoding, so the zero-shot row is
``zero-shot-constrained``) or ``free`` (greedy, parsed and repaired).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("tallrec", "rec-r1", "rank-grpo", "flexrec")
REFERENCES = ("random", "popularity")
METRICS = ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "mrr@5")
HEADERS = {"ndcg@5": "N@5", "ndcg@10": "N@10", "ndcg@30": "N@30", "recall@5": "R@5", "mrr@5": "MRR@5"}
ALPHA = 0.05
Runner = Callable[[Sequence[str]], int]


# ------------------------------------------------------------------ table logic
@dataclass(frozen=True)
class RowSummary:
    """One table row: means over the instances it shares with the reference, and the paired tests."""

    label: str
    n: int
    means: dict[str, float]
    delta: dict[str, float]             # mean difference to the reference on the shared instances
    pvalues: dict[str, tuple[float, float]]  # (t-test, Fisher randomization)
    marks: dict[str, str]               # "▲" / "▼" when both p < ALPHA, else ""


def summarise(scores: Mapping[str, Mapping[str, Mapping[str, float]]], reference: str,
              metrics: Sequence[str] = METRICS, *, n_resamples: int = 10000) -> list[RowSummary]:
    """Rows of ``scores`` (label -> instance ID -> metric -> value) tested against ``reference``.

    Every row is compared on the instances it shares with the reference; a mark
    needs the paired t-test *and* the Fisher randomization test below ``ALPHA``
    (two-sided), as on the main boards. The reference row itself has no marks.
    """
    import numpy as np

    from flexbench.leaderboard.significance import paired_pvalues

    if reference not in scores:
        raise ValueError(f"reference row {reference!r} has no stored scores")
    ref = scores[reference]
    out = []
    for label, rows in scores.items():
        shared = sorted(set(rows) & set(ref))
        if not shared:
            raise ValueError(f"row {label!r} shares no instance with {reference!r}")
        means, delta, pvals, marks = {}, {}, {}, {}
        for m in metrics:
            a = np.array([rows[i][m] for i in shared])
            b = np.array([ref[i][m] for i in shared])
            means[m], delta[m] = float(a.mean()), float(a.mean() - b.mean())
            pvals[m] = (1.0, 1.0) if label == reference else paired_pvalues(a, b, n_resamples=n_resamples)
            significant = max(pvals[m]) < ALPHA and delta[m] != 0
            marks[m] = ("▲" if delta[m] > 0 else "▼") if significant else ""
        out.append(RowSummary(label, len(shared), means, delta, pvals, marks))
    return out


def render_table(rows: Sequence[RowSummary], reference: str, caption: str,
                 curves: Mapping[str, str] | None = None, metrics: Sequence[str] = METRICS) -> str:
    """Markdown: caption, one line per row (values with marks), Δ N@5 with both p-values, curve links."""
    curves = dict(curves or {})
    head = ["Method", *(HEADERS.get(m, m) for m in metrics), f"Δ N@5 vs {reference}", "p (t / Fisher)", "n",
            "curves"]
    lines = [caption, "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [f"{r.means[m]:.3f}{r.marks[m]}" for m in metrics]
        first = metrics[0]
        if r.label == reference:
            diff, p = "—", "—"
        else:
            diff = f"{r.delta[first]:+.3f}"
            p = f"{r.pvalues[first][0]:.3f} / {r.pvalues[first][1]:.3f}"
        link = f"[curve]({curves[r.label]})" if r.label in curves else ""
        lines.append("| " + " | ".join([r.label, *cells, diff, p, str(r.n), link]) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ state + commands
def state_path(data: Path, dataset: str, need: str) -> Path:
    return data / "small-scale" / f"{dataset}-{need}.json"


def load_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"train": {}}


def save_state(path: Path, state: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


def train_command(method: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "flexbench", "train", method, "--dataset", args.dataset, "--need", args.need,
           "--config", str(args.preset)]
    return cmd + [x for kv in args.train_set for x in ("--set", kv)]


def eval_command(row: str, args: argparse.Namespace, prompt: Mapping[str, Any]) -> list[str]:
    """``flexbench eval`` of ``row`` with the shared decoding and the policies' prompt."""
    cmd = [sys.executable, "-m", "flexbench", "eval", row, "--dataset", args.dataset, "--need", args.need,
           "--limit", str(args.limit), "--batch-size", str(args.batch_size)]
    if row in REFERENCES:
        return cmd
    constrained = "true" if args.decoding == "constrained" else "false"
    sets = [f"max_new_tokens={prompt['max_new_tokens']}", f"batch_size={args.batch_size}"]
    if row.startswith("zero-shot"):
        cmd += ["--model", str(prompt["model"])]
        sets += [f"max_item_chars={prompt['prompt_item_chars']}", f"prompt_mode={prompt['prompt_mode']}",
                 "progress=false"]
        if row == "zero-shot":
            sets.append(f"constrained={constrained}")
    else:
        sets.append(f"constrained={constrained}")
    return cmd + [x for kv in sets for x in ("--set", kv)]


def zero_shot_row(decoding: str) -> str:
    return "zero-shot-constrained" if decoding == "constrained" else "zero-shot"


def shared_prompt(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Model and prompt settings every policy was trained with (they must agree: one zero-shot row)."""
    keys = ("model", "prompt_item_chars", "prompt_mode", "max_new_tokens")
    values = {k: {json.dumps(c.get(k)) for c in configs.values()} for k in keys}
    differ = [k for k, v in values.items() if len(v) > 1]
    if differ:
        raise SystemExit(f"the policies were trained with different {', '.join(differ)}; one zero-shot row "
                         "cannot match them all")
    first = next(iter(configs.values()))
    return {k: first.get(k) for k in keys}


BASE_VALIDATION_KEYS = ("model", "prompt_item_chars", "prompt_mode", "max_new_tokens", "eval_max_new_tokens",
                        "eval_instances", "constrained", "seed", "lora", "precision")
"""Settings that fix the step-0 validation: the untrained policy's greedy rankings of the same instances."""


def resolved_config(method: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The config ``flexbench train method --config <preset> --set ...`` will resolve to."""
    from flexbench.train.methods import get_method
    from flexbench.train.run import build_config
    from flexbench.trainers import TrainRequest

    options = {**json.loads(Path(args.preset).read_text()), **dict(kv.split("=", 1) for kv in args.train_set)}
    cfg = build_config(get_method(method), TrainRequest(method, args.dataset, (args.need,), out, options=options))
    return json.loads(json.dumps(cfg.to_dict()))


def share_base_validation(method: str, earlier: Sequence[str], args: argparse.Namespace, data: Path) -> str | None:
    """Seed a fresh run's ``metrics.jsonl`` with an earlier run's step-0 validation when both validate the
    same untrained model the same way (:data:`BASE_VALIDATION_KEYS` equal): greedy decoding of the same
    base model (LoRA's B starts at zero) on the same instances gives the same line, so the loop, which
    skips a step-0 validation already logged, does not spend minutes recomputing it. The copied line
    names its source (``"shared_from"``). Returns that source, or None."""
    from flexbench.train.curves import METRICS_FILE, append_line, has_valid_line, read_metrics

    ckpt = checkpoint_of(data, method, args.dataset, args.need)
    if (ckpt / METRICS_FILE).exists():
        return None
    mine = resolved_config(method, args, ckpt)
    for other in earlier:
        src = checkpoint_of(data, other, args.dataset, args.need)
        if not (src / "run.json").exists() or not has_valid_line(src / METRICS_FILE, 0):
            continue
        theirs = read_config(src)
        if all(json.dumps(mine.get(k)) == json.dumps(theirs.get(k)) for k in BASE_VALIDATION_KEYS):
            ckpt.mkdir(parents=True, exist_ok=True)
            for line in read_metrics(src / METRICS_FILE, "valid"):
                if line["step"] == 0:
                    append_line(ckpt / METRICS_FILE, {**line, "shared_from": line.get("shared_from", other)})
            return other
    return None


def run_train(methods: Sequence[str], args: argparse.Namespace, state: dict[str, Any], path: Path,
              runner: Runner) -> None:
    """Train each method not yet marked done, one at a time, adding each invocation's wall time."""
    from flexbench.paths import data_root

    for i, method in enumerate(methods):
        entry = state["train"].setdefault(method, {"wall_s": 0.0, "done": False, "invocations": 0})
        if entry["done"]:
            continue
        if not args.dry_run and args.share_base_validation:
            source = share_base_validation(method, methods[:i], args, data_root())
            if source:
                print(f"{method}: step-0 validation shared with {source} (same base model and settings)", flush=True)
        started = time.time()
        rc = runner(train_command(method, args))
        entry["wall_s"] += time.time() - started
        entry["invocations"] += 1
        entry["done"] = rc == 0
        save_state(path, state)
        if rc != 0:
            raise SystemExit(f"training {method} stopped (exit {rc}); rerun to resume")


def run_eval(args: argparse.Namespace, data: Path, path: Path, runner: Runner,
             sleep: Callable[[float], None] = time.sleep) -> None:
    """Evaluate the reference rows, zero-shot and every trained method on the same instances.

    Without ``--follow`` every method must already be trained. With ``--follow``
    (a second lane beside a running ``--stages train``) the reference and
    zero-shot rows start as soon as one method has written its ``run.json`` (the
    prompt settings), and each method is evaluated as soon as the state file marks
    its training done, polling every ``--poll`` seconds.
    """
    done_rows: set[str] = set()
    pending = [*REFERENCES, zero_shot_row(args.decoding), *args.methods]
    while pending:
        ckpts = {m: checkpoint_of(data, m, args.dataset, args.need) for m in args.methods}
        configs = {m: read_config(c) for m, c in ckpts.items() if not args.follow or (c / "run.json").exists()}
        trained = {m for m, e in load_state(path)["train"].items() if e.get("done")}
        ready = [r for r in pending if r not in args.methods or not args.follow or r in trained]
        if configs and ready:
            prompt = shared_prompt(configs)
            for row in ready:
                rc = runner(eval_command(row, args, prompt))
                if rc != 0:
                    raise SystemExit(f"evaluating {row} stopped (exit {rc}); rerun to resume")
                done_rows.add(row)
            pending = [r for r in pending if r not in done_rows]
        else:
            print(f"waiting for training: {', '.join(pending)} not evaluated yet", flush=True)
            sleep(args.poll)


# ------------------------------------------------------------------ reading stored runs
def checkpoint_of(data: Path, method: str, dataset: str, need: str) -> Path:
    return data / "checkpoints" / method / dataset / need


def read_config(ckpt: Path) -> dict[str, Any]:
    run = ckpt / "run.json"
    if not run.exists():
        raise SystemExit(f"{run} is missing: train first (stage 'train')")
    return dict(json.loads(run.read_text())["config"])


def load_scores(labels: Sequence[str], dataset: str, need: str) -> dict[str, dict[str, dict[str, float]]]:
    """Per-instance metrics of each stored test run (``label -> instance -> metric -> value``)."""
    from flexbench.results import ResultStore
    from flexbench.types import RunKey

    store, out = ResultStore(), {}
    for label in labels:
        key = RunKey(label, dataset, need, "test")
        run = store.load_run(key)  # verified against its records
        if run is None or not run.complete:
            raise SystemExit(f"no complete stored test run of {label!r} on {dataset}/{need}: run stage 'eval'")
        records = store.load_records(key)[:run.n_instances]
        out[label] = {r.instance_id: dict(r.metrics) for r in records}
    return out


def training_figures(ckpt: Path) -> dict[str, Any]:
    """Steps, summed step seconds and validation NDCG@5 at the first and last validation."""
    from flexbench.train.curves import METRICS_FILE, read_metrics

    train = read_metrics(ckpt / METRICS_FILE, "train")
    valid = read_metrics(ckpt / METRICS_FILE, "valid")
    return {"steps": max((r["step"] for r in train), default=0),
            "step_seconds": float(sum(r.get("seconds", 0.0) for r in train)),
            "valid_first": valid[0]["ndcg@5"] if valid else None, "valid_last": valid[-1]["ndcg@5"] if valid else None,
            "valid_n": valid[-1]["n"] if valid else 0}


def copy_curves(data: Path, methods: Sequence[str], args: argparse.Namespace, out_dir: Path,
                link_base: str) -> dict[str, str]:
    """Re-plot each checkpoint's ``curve.png`` (all panels) and copy it to ``out_dir``; ``label -> link``."""
    from flexbench.train.curves import CURVE_FILE, METRICS_FILE, plot_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    links = {}
    for method in methods:
        ckpt = checkpoint_of(data, method, args.dataset, args.need)
        plot_curve(ckpt / METRICS_FILE, ckpt / CURVE_FILE)
        if (ckpt / CURVE_FILE).exists():
            name = f"{method}-{args.dataset}-{args.need}.png"
            shutil.copyfile(ckpt / CURVE_FILE, out_dir / name)
            links[method] = f"{link_base}/{name}"
    return links


def caption(args: argparse.Namespace, configs: Mapping[str, Mapping[str, Any]], state: Mapping[str, Any],
            figures: Mapping[str, Mapping[str, Any]], n: int, available: int, reference: str) -> str:
    """The setting: model, preset values, steps and wall time per method, instances, decoding, tests."""
    prompt = shared_prompt(configs)
    first = next(iter(configs.values()))
    per_method = []
    for m, c in configs.items():
        wall = state["train"].get(m, {}).get("wall_s")
        tune = (f"LoRA r={c['lora_r']} sft_lr={c['sft_lr']:g}" if m == "tallrec" else
                f"{'LoRA r=' + str(c['lora_r']) if c['lora'] else 'full'} lr={c['lr']:g}"
                + (f", {c['sft_warmup_steps']} SFT warm-up steps (sft_lr={c['sft_lr']:g})"
                   if c.get("sft_warmup_steps") else ""))
        f = figures[m]
        per_method.append(f"{m}: {f['steps']} optimizer steps, {tune}, training wall time {wall / 60:.1f} min"
                          if wall is not None else f"{m}: {f['steps']} optimizer steps, {tune}")
    decoding = ("permutation-constrained greedy decoding for every row (zero-shot included)"
                if args.decoding == "constrained" else "free greedy decoding for every row, parsed and repaired")
    return (f"## Small-scale Table 1: {args.dataset} / {args.need} with {prompt['model']} on CPU\n\n"
            f"Setting: preset `{Path(args.preset).stem}` ({Path(args.preset).name}): G = {first['group_size']} "
            f"rollouts per prompt, {first['prompts_per_step']} prompt(s) per step, item text cut to "
            f"{prompt['prompt_item_chars']} characters, prompt mode `{prompt['prompt_mode']}`, "
            f"{'constrained' if first['constrained'] else 'free'} rollouts, "
            f"{first['cpu_threads'] or 'default'} torch thread(s), seed {first['seed']}. "
            + "; ".join(per_method) + f". Test: the first {n} of the {available} test instances, the same for "
            f"every row{' (fewer than 100 exist)' if available < 100 else ''}; {decoding}. "
            f"▲/▼: significantly better/worse than `{reference}` (paired t-test and Fisher randomization test "
            f"over instances, both two-sided p < {ALPHA}); Δ and p are for N@5. Wall times were measured on a "
            "shared 2-core machine (docs/SMALL_SCALE.md). `random` and `popularity` are reference rows.")


def build_board(args: argparse.Namespace, state: Mapping[str, Any]) -> str:
    from flexbench.catalog import open_dataset
    from flexbench.paths import data_root

    data = data_root()
    methods = list(args.methods)
    configs = {m: read_config(checkpoint_of(data, m, args.dataset, args.need)) for m in methods}
    reference = zero_shot_row(args.decoding)
    labels = [*REFERENCES, reference, *methods]
    scores = load_scores(labels, args.dataset, args.need)
    rows = summarise(scores, reference, n_resamples=args.resamples)
    figures = {m: training_figures(checkpoint_of(data, m, args.dataset, args.need)) for m in methods}
    out = Path(args.out)
    links = copy_curves(data, methods, args, out.with_suffix(""), out.with_suffix("").name)
    n = min(r.n for r in rows)
    available = len(open_dataset(args.dataset).instances("test"))
    return render_table(rows, reference, caption(args, configs, state, figures, n, available, reference), links)


# ------------------------------------------------------------------ CLI
def _args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="kuairec")
    p.add_argument("--need", default="interest")
    p.add_argument("--methods", default=",".join(METHODS), type=lambda s: [m for m in s.split(",") if m])
    p.add_argument("--preset", default=str(ROOT / "flexbench" / "train" / "presets" / "cpu-small.json"))
    p.add_argument("--train-set", action="append", default=[], help="extra `flexbench train --set` key=value")
    p.add_argument("--limit", type=int, default=130, help="test instances (the KuaiRec sample has 130)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--decoding", choices=("constrained", "free"), default="constrained")
    p.add_argument("--resamples", type=int, default=10000, help="Fisher randomization sign flips")
    p.add_argument("--stages", default="train,eval,table", type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--out", default=str(ROOT / "leaderboards" / "small-scale.md"))
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--no-share-base-validation", dest="share_base_validation", action="store_false",
                   help="recompute every run's step-0 validation instead of reusing an identical earlier one")
    p.add_argument("--follow", action="store_true",
                   help="stage eval beside a running train stage: evaluate each method once it is trained")
    p.add_argument("--poll", type=float, default=30.0, help="--follow: seconds between checks")
    return p.parse_args(argv)


def _subprocess_runner(dry: bool) -> Runner:
    def run(cmd: Sequence[str]) -> int:
        print("$", " ".join(cmd[2:] if cmd[:2] == [sys.executable, "-m"] else cmd), flush=True)
        return 0 if dry else subprocess.call(list(cmd), cwd=ROOT)
    return run


def main(argv: Sequence[str] | None = None, runner: Runner | None = None) -> int:
    from flexbench.paths import data_root

    args = _args(argv)
    runner = runner or _subprocess_runner(args.dry_run)
    data = data_root()
    path = state_path(data, args.dataset, args.need)
    state = load_state(path)
    if "train" in args.stages:
        run_train(args.methods, args, state, path if not args.dry_run else path.with_suffix(".dry-run.json"),
                  runner)
    if "eval" in args.stages:
        run_eval(args, data, path, runner)
    if "table" in args.stages and not args.dry_run:
        text = build_board(args, state)
        Path(args.out).write_text(text)
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
