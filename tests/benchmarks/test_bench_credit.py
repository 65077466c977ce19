"""Smoke tests of the credit-assignment testbed's machinery (benchmarks/bench_credit.py and its modules).

The fast tests check the synthetic task (gains follow the stated formula, the prompt shows
what decides them, a label is one token, the observed density), the credit probe on
hand-made rollouts, and the report (aggregation, paired test, Markdown, PNG). The slow
test trains two rows for two steps through the real loop.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import credit_report
    import credit_runs
    import credit_task

    return SimpleNamespace(task=credit_task, runs=credit_runs, report=credit_report)


@pytest.fixture()
def small_task(bench, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = bench.task.TaskConfig(n_train=40, n_valid=8, n_test=8, n_items=40, observed=0.5)
    return cfg, bench.task.write_task(tmp_path / "data", cfg)


def test_gains_follow_the_formula_and_the_prompt_shows_them(bench, small_task) -> None:  # type: ignore[no-untyped-def]
    from flexbench.llm.prompts import build_prompt
    from flexbench.vocabulary import get_need

    cfg, ds = small_task
    labels = ds.labels("interest", "train")
    readable, gains = [], []
    for x in ds.instances("train"):
        share = {t: sum(h.topics[0] == t for h in x.history) / len(x.history) for t in bench.task.TOPICS}
        readable += [cfg.grade_weight * (int(c.text.split(" q")[1]) - 1) / 4 + cfg.topic_weight * share[c.topics[0]]
                     for c in x.candidates]
        gains += labels[x.instance_id].gains
    residual = np.asarray(gains) - np.asarray(readable)
    assert np.min(gains) >= 0 and abs(np.mean(residual)) < 0.15 and np.std(residual) < 2 * cfg.noise
    assert np.corrcoef(readable, gains)[0, 1] > 0.85  # the readable part decides most of the gain
    observed = ds.interactions("train")
    x = ds.instances("train", limit=1)[0]
    seen = observed[(observed["user_id"] == x.user_id) & observed["item_id"].isin(x.candidate_ids)]
    gain_of = labels[x.instance_id].gain_of()
    assert all(gain_of[i] == v for i, v in zip(seen["item_id"], seen["value"], strict=True))  # observed = label
    x = ds.instances("train", limit=1)[0]
    text = build_prompt(x, get_need("interest"), seed=0).text
    assert all(c.text in text for c in x.candidates) and all(h.text in text for h in x.history)
    assert 0.3 < bench.task.observed_density(ds) < 0.7


def test_tokenizer_makes_each_label_one_token(bench, small_task) -> None:  # type: ignore[no-untyped-def]
    _, ds = small_task
    tok = bench.task.train_tokenizer(ds, vocab_size=600)
    ids = tok("[3]\n[5]\n", add_special_tokens=False)["input_ids"]
    assert [tok.decode([i]) for i in ids] == ["[3]", "\n", "[5]", "\n"]
    model = bench.task.tiny_model(tok, hidden=16, layers=1)
    assert model.config.vocab_size == len(tok)


def test_probe_scores_advantage_signs_against_true_quality(bench, small_task) -> None:  # type: ignore[no-untyped-def]
    from flexbench.llm.labels import format_entry, label_map

    _, ds = small_task
    tok = bench.task.train_tokenizer(ds, vocab_size=600)
    x = ds.instances("train", limit=1)[0]
    true = np.asarray(ds.labels("interest", "train")[x.instance_id].gains)
    best_first = [x.candidate_ids[j] for j in np.argsort(-true, kind="stable")]
    labels = label_map(x.candidate_ids)
    ids = tok("".join(format_entry(labels[c]) for c in best_first), add_special_tokens=False)["input_ids"]
    ids = [*ids, tok.eos_token_id]
    adv = np.where(np.arange(len(ids)) % 2 == 0, 1.0, 0.5)  # +1 on every entry token, 0.5 on the others
    adv[-1] = 0.5  # EOS
    rollout = SimpleNamespace(group=0, completion_ids=ids, advantages=adv, weight=1.0)
    task = SimpleNamespace(instance=x)
    probe = bench.runs.CreditProbe(SimpleNamespace(sample=lambda tasks, step: [rollout]), tok, None,
                                   {x.instance_id: true}, grad_steps=())
    assert probe.sample([task], 0) == [rollout]
    s = probe.summary()
    assert s["adv_item"]["mean"] == 1.0 and s["adv_other"]["mean"] == 0.5
    informative = [q for _, q in probe.pairs if q != 0]
    assert s["sign_agreement"] == pytest.approx(np.mean(np.array(informative) > 0))
    assert probe.pairs[0][1] > 0  # the best item first beats a uniform pick


def _result(label: str, seed: int, curve: list, test: dict) -> dict:
    probe = {"sign_agreement": 0.8, "corr_adv_quality": 0.5, "adv_item": {"mean_abs": 1.0}, "adv_other": None,
             "weight_spread": 0.0, "net_adv_abs": 0.0, "n_entries": 10, "grad_norms": [{"step": 0, "item": 1.0, "other": 0.1}]}
    return {"label": label, "seed": seed, "curve": curve, "test": test, "probe": probe, "wall_s": 1.0, "cpu_s": 1.0}


def test_seed_test_is_paired_over_seeds_with_its_detectable_effect(bench) -> None:  # type: ignore[no-untyped-def]
    from scipy import stats

    a, b = [0.61, 0.58, 0.64, 0.60, 0.63], [0.55, 0.57, 0.59, 0.52, 0.60]
    t = bench.report.seed_test(a, b)
    assert t["n"] == 5 and t["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    d = np.subtract(a, b)
    want = (stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * d.std(ddof=1) / np.sqrt(5)
    assert t["mde"] == pytest.approx(want) and t["test"] == "paired t over 5 seeds"


def test_rare_topic_is_observed_less_and_history_rows_carry_label_noise(bench) -> None:  # type: ignore[no-untyped-def]
    cfg = bench.task.TaskConfig()
    probs = bench.task.observation_probs(cfg)
    assert probs.mean() == pytest.approx(cfg.observed) and probs[cfg.rare_topic] == pytest.approx(probs[0] * 0.2)


def test_report_aggregates_tests_and_renders(bench, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    setting = {"prompts_per_step": 2, "group_size": 4, "threshold": 0.6}
    results = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        base = {f"i{j}": float(v) for j, v in enumerate(rng.uniform(0.3, 0.6, 30))}
        results.append(_result("rec-r1", seed, [(0, 0.5), (5, 0.55)], base))
        results.append(_result("flexrec", seed, [(0, 0.5), (5, 0.7 + seed / 10)], {i: v + 0.2 for i, v in base.items()}))
    summary = bench.report.summarize(results, setting)
    flex = summary["flexrec"]
    assert flex["start"] == [0.5, 0.5] and flex["end"] == pytest.approx([0.7, 0.8])
    assert flex["steps_to_threshold"] == [5, 5] and flex["rollouts_to_threshold"] == [40, 40]
    vs = flex["vs"]["rec-r1"]  # seed level: one number per training run
    assert vs["n"] == 2 and vs["mean_diff"] == pytest.approx(0.2) and vs["p"] < 0.05
    assert summary["rec-r1"]["vs"] == {}
    assert summary["rec-r1"]["steps_to_threshold"] == [None, None]
    assert flex["curve"]["steps"] == [0, 5] and flex["curve"]["mean"] == pytest.approx([0.5, 0.75])
    assert bench.report.steps_to([(-5, 0.9), (0, 0.1), (3, 0.65)], 0.6) == 3  # warm-up points do not count
    import bench_credit

    full = {**dataclasses.asdict(bench_credit.QUICK), "seed_list": [0, 1], "task": bench.task.TaskConfig().to_dict()}
    meta = {"n_params": 1000, "vocab": 600, "density": 0.15, "command": "bench_credit.py --quick", "wall_s": 60.0,
            "workers": 2, "cpus": 2, "load_start": 1.0, "load_end": 1.0, "run_wall_s": 1.0, "run_cpu_s": 1.0,
            "critic": "test MSE 0.1"}
    signals = {"labels": {"rmse": 0.0, "pearson": 1.0, "ndcg5": 1.0, "var_corr": None}}
    doc = tmp_path / "credit.json"
    doc.write_text(json.dumps({"setting": full, "meta": meta, "signals": signals, "methods": summary}))
    page = tmp_path / "credit.md"
    bench_credit.main(["--from-json", str(doc), "--md", str(page)])  # re-rendered from the JSON, no training
    md = page.read_text()
    assert "| flexrec | 0.500 ± 0.000 | 0.750 ± 0.071 |" in md and "+0.200▲" in md and "(reference)" in md
    assert "40 RL steps (1280 rollouts)" in md and "| labels | 0.000 | 1.000 | 1.000 | — |" in md
    assert page.with_suffix(".png").stat().st_size > 0
    refs = [line.split("|") for line in md.splitlines() if "(reference, no training)" in line]
    assert [r[1].strip() for r in refs] == ["*random (reference, no training)*", "*fixed order (reference, no training)*",
                                             "*readable oracle (reference, no training)*"]
    assert float(refs[0][3]) < float(refs[1][3]) < float(refs[2][3]) < 1  # regenerated from the JSON's task settings


@pytest.mark.slow
def test_two_rows_train_through_the_real_loop(bench, small_task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two RL steps of flexrec and rec-r1 on true labels: curves, test scores and probe figures come back."""
    cfg, ds = small_task
    tok = bench.task.train_tokenizer(ds, vocab_size=600)
    tok.save_pretrained(tmp_path / "tok")
    setting = {"steps": 2, "prompts_per_step": 2, "group_size": 4, "lr": 3e-3, "kl_coef": 0.01,
               "entropy_coef": 0.005, "eval_every": 1, "eval_instances": 4, "test_instances": 4, "hidden": 16,
               "layers": 1, "k": cfg.k}
    for method in ("flexrec", "rec-r1"):
        job = bench.runs.Job(method, method, "labels", 0, 0, setting, str(ds.root), str(tmp_path / "tok"), "",
                             str(tmp_path / method))
        out = bench.runs.run_job(job)
        assert [s for s, _ in out["curve"]] == [0, 1, 2] and len(out["test"]) == 4
        assert out["probe"]["n_entries"] > 0 and len(out["probe"]["grad_norms"]) == 2


def test_finished_jobs_are_not_run_again(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    calls = []
    monkeypatch.setattr(bench.runs, "run_job", lambda job: calls.append(job.seed) or {"label": job.label, "seed": job.seed})
    job = bench.runs.Job("flexrec", "flexrec", "labels", 0, 0, {"steps": 2}, "d", "t", "c", str(tmp_path / "r"))
    (tmp_path / "r").mkdir()
    assert bench.runs.run_job_cached(job) == {"label": "flexrec", "seed": 0}
    assert bench.runs.run_job_cached(job)["cached"] is True and calls == [0]
    changed = dataclasses.replace(job, setting={"steps": 3})  # another setting: run again
    bench.runs.run_job_cached(changed)
    assert calls == [0, 0]
