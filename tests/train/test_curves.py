"""Training curves: the uncertainty weights' spread is logged per RL step and every logged series is plotted."""

from __future__ import annotations

from pathlib import Path

from policy_fixtures import toy_tokenizer, toy_trainer

from flexbench.train.curves import (
    CURVE_FILE,
    METRICS_FILE,
    append_line,
    curve_panels,
    plot_curve,
    read_metrics,
)

__all__ = ["toy_tokenizer"]


def test_rl_steps_log_the_uncertainty_weight_spread(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """FlexRec's weights vary where a ranked item's gain is uncertain (toy c1 has variance 0.1); Rec-R1 has none."""
    for method, spread in (("flexrec", True), ("rec-r1", False)):
        out = tmp_path / method
        toy_trainer(toy_tokenizer, out, method=method, steps=2, sft_warmup_steps=0).train(resume=False)
        rows = read_metrics(out / METRICS_FILE, "train")
        assert len(rows) == 2
        for row in rows:
            assert 0.25 <= row["weight_min"] <= 1.0 <= row["weight_max"] <= 4.0
            assert (row["weight_std"] > 0) is spread, (method, row)


def test_panels_follow_what_the_run_logged(tmp_path: Path) -> None:
    rl = [{"step": 1, "split": "train", "reward_mean": 0.4, "loss": 0.1, "kl": 0.01, "entropy": 1.2,
           "weight_std": 0.3, "weight_min": 0.5, "weight_max": 2.0}]
    sft = [{"step": 1, "split": "train", "phase": "sft", "loss": 2.5}]
    assert [t for t, _ in curve_panels(rl)] == ["rollout reward (train)", "loss (SFT: cross-entropy)",
                                                "KL to the reference (k3)", "entropy", "uncertainty weights"]
    assert curve_panels(sft) == [("loss (SFT: cross-entropy)", ["loss"])]
    metrics = tmp_path / METRICS_FILE
    for line in [{"step": 0, "split": "valid", "need": "interest", "ndcg@5": 0.3, "ndcg@10": 0.4}, *rl,
                 {"step": 1, "split": "valid", "need": "interest", "ndcg@5": 0.35, "ndcg@10": 0.45}]:
        append_line(metrics, line)
    plot_curve(metrics, tmp_path / CURVE_FILE)
    assert (tmp_path / CURVE_FILE).read_bytes()[:4] == b"\x89PNG"
