"""The signals a need's prompts show: topics for Explore New Topics, 24 h counts for Trend Promotion."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flexbench.cli import app
from flexbench.llm.prompts import build_prompt
from flexbench.types import Candidate, HistoryItem, Instance, Split
from flexbench.vocabulary import ESCI, INTEREST, NOVELTY, NOVELTY_V2, TREND, TREND_V2


def _instance() -> Instance:
    return Instance("x", "tiny", Split.TEST, (
        Candidate("a", "Movie Title: Alpha", ("Horror",), 0.9, 12),
        Candidate("b", "Movie Title: Beta", (), 0.2, 0),
        Candidate("c", "Video caption: gamma", ("27", "9"), 0.5, 3),
    ), user_id="u", history=(HistoryItem("h", "Movie Title: Old", 4.0, 1, ("Drama", "Comedy")),), query_time=10)


def _user(need) -> str:
    return build_prompt(_instance(), need, seed=0).messages[-1]["content"]


def test_novelty_prompts_show_history_and_candidate_topics() -> None:
    for need in (NOVELTY, NOVELTY_V2):
        text = _user(need)
        assert "- Movie Title: Old (engagement 4.00; topics: Drama, Comedy)" in text
        assert "Movie Title: Alpha (topics: Horror)" in text and "Movie Title: Beta (topics: none)" in text
        assert "gamma (topics: topic 27, topic 9)" in text and "past 24 h" not in text
    assert _user(NOVELTY) == _user(NOVELTY_V2)        # the v2 labels change nothing the model sees


def test_trend_prompts_show_the_24h_counts_and_other_needs_show_neither() -> None:
    text = _user(TREND)
    assert "Movie Title: Alpha (interactions in the past 24 h: 12)" in text
    assert "Movie Title: Beta (interactions in the past 24 h: 0)" in text
    assert "counts all users' interactions with the item in the day before now" in text and "topics:" not in text
    assert _user(TREND_V2) == text
    for need in (INTEREST, ESCI):
        plain = _user(need)
        assert "topics:" not in plain and "past 24 h" not in plain and "(engagement 4.00)" in plain


def test_counts_are_left_out_where_the_dataset_has_none() -> None:
    x = Instance("x", "tiny", Split.TEST, (Candidate("a", "A"), Candidate("b", "B")), history=(
        HistoryItem("h", "H", 1.0),))
    text = build_prompt(x, TREND, seed=0).messages[-1]["content"]
    assert "past 24 h" not in text


def test_cli_prompt_prints_one_instance(tmp_path: Path, data_root: Path) -> None:
    from flexbench.datasets.prepare import prepare_sample

    ds = prepare_sample("kuairec", data_root / "prepared", encoder="hash", cache=tmp_path / "emb")
    runner = CliRunner()
    out = runner.invoke(app, ["prompt", "--dataset", "kuairec", "--need", "trend", "--index", "2"])
    assert out.exit_code == 0, out.output
    x = ds.instances("test")[2]
    assert x.instance_id in out.output and out.output.count("(interactions in the past 24 h: ") == x.k
    out = runner.invoke(app, ["prompt", "--dataset", "kuairec", "--need", "novelty"])
    assert out.exit_code == 0 and "topics: topic " in out.output
    out = runner.invoke(app, ["prompt", "--dataset", "kuairec", "--need", "esci"])
    assert out.exit_code != 0 and "no need 'esci'" in str(out.exception)
