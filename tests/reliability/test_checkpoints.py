"""Damaged training checkpoints are named, not reused (issue 16, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flexbench.errors import FlexBenchError
from flexbench.train.policy_ranker import read_run
from flexbench.train.signal.critic import load_critic


def test_truncated_critic_is_retrained_not_reused(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flexbench.cli.critic import train_critic_command
    from flexbench.trainers import TrainRequest

    out = data_root / "ckpt"
    request = TrainRequest(method="critic", dataset="mock", needs=("interest",), out_dir=out,
                           options={"epochs": 1, "hidden": 8})
    train_critic_command(request)
    path = out / "critic.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FlexBenchError, match=r"critic.pt: not a readable critic checkpoint .*truncated or corrupt"):
        load_critic(out)
    capsys.readouterr()
    train_critic_command(request)
    printed = capsys.readouterr().out
    assert "reusing" not in printed and "training it again" in " ".join(printed.split())
    assert load_critic(out).item_ids


@pytest.mark.parametrize(("text", "match"), [('{"method": "flexrec", "train_ne', r"run.json: unreadable"),
                                             ("[1, 2]", r"run.json: a JSON list, expected an object")])
def test_corrupt_checkpoint_run_json_is_a_clear_error(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(FlexBenchError, match=match):
        read_run(tmp_path)
    assert read_run(tmp_path / "absent") == {}
