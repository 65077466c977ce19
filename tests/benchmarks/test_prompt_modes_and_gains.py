"""The report logic of benchmarks/prompt_modes.py and benchmarks/gain_fidelity.py on hand-made inputs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gain_fidelity
    import prompt_modes

    return SimpleNamespace(modes=prompt_modes, gains=gain_fidelity)


def test_rationale_is_words_beyond_the_marker(bench: SimpleNamespace) -> None:
    assert not bench.modes.has_rationale("Final ranking:\n1. ")
    assert not bench.modes.has_rationale("11\n2\n")
    assert bench.modes.has_rationale("The user likes music videos.\nFinal ranking:\n")


def test_mode_stats_counts_failures_lengths_and_caps(bench: SimpleNamespace) -> None:
    from flexbench.types import InstanceRecord

    cands = {"a": ("i1", "i2", "i3"), "b": ("i1", "i2", "i3")}

    def record(iid: str, text: str, padded: int) -> InstanceRecord:
        return InstanceRecord(iid, text, None, True, (), (), 0, 0, padded, {"ndcg@5": 0.5})

    def tokenizer(text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text.split())))}

    records = [record("a", "Music fans first. Final ranking:\n[1]\n[2]\n[3]", 0), record("b", "no list here", 3)]
    row = bench.modes.mode_stats("reason", records, cands, tokenizer, max_new_tokens=5)
    assert row["parse_rate"] == 0.5 and row["failures"] == {"no-list": 1}
    assert row["rationale"] == 1.0 and row["reason_tokens"] == 5  # "Music fans first. Final ranking:"
    assert row["cap_hits"] == 0.5 and row["pad"] == 1.5 and row["k"] == 3


def test_gain_fidelity_scores_the_reward_optimum_on_the_labels(bench: SimpleNamespace) -> None:
    ids = [f"i{j}" for j in range(6)]
    labels = np.array([15.0, 7.0, 0.0, 0.0, 0.0, 0.0])
    exact = bench.gains.signal_stats("observed", [(labels.copy(), labels, ids)])
    assert exact["ndcg@5"] == 1.0 and exact["fillers_top5"] == 3 and exact["filler_over_labelled"] == 0
    imputed = np.array([15.0, 7.0, 20.0, 1.0, 1.0, 1.0])  # a filler imputed above every rated item
    row = bench.gains.signal_stats("critic", [(imputed, labels, ids)])
    assert row["ndcg@5"] < 1.0 and row["fillers_top5"] == 3
    assert row["filler_over_labelled"] == pytest.approx(np.mean([20, 1, 1, 1]) / 11)
