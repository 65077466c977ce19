"""GPT-4o ranker: unavailable without a key; end to end through a loopback fake endpoint."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer

from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext, RankerUnavailable, build_ranker
from flexbench.vocabulary import NOVELTY

SECRET = "sk-test-gpt4o-SECRET-91b2"


def test_unavailable_without_a_key(mock_dataset: PreparedDataset, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(RankerUnavailable, match="OPENAI_API_KEY"):
        build_ranker("gpt-4o", RankerContext(mock_dataset, cache_dir=tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(RankerUnavailable, match="TEAM_KEY"):
        build_ranker("gpt-4o", RankerContext(mock_dataset, options={"api_key_env": "TEAM_KEY"},
                                             cache_dir=tmp_path))


@pytest.mark.network
def test_ranks_through_an_openai_compatible_endpoint(mock_dataset: PreparedDataset, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEAM_KEY", SECRET)
    instances = mock_dataset.instances("test", limit=5)
    with FakeOpenAIServer(failures=["429", "500"], leak_auth_in_errors=True) as server:
        options = {"base_url": server.base_url, "api_key_env": "TEAM_KEY", "model": "fake-4o",
                   "backoff_base_s": 0.01, "progress": False}
        ranker = build_ranker("gpt-4o", RankerContext(mock_dataset, seed=4, options=options,
                                                      cache_dir=tmp_path / "cache"))
        rankings = ranker.rank(instances, NOVELTY)
        n_sent = len(server.requests)
        assert ranker.rank(instances, NOVELTY) == rankings and len(server.requests) == n_sent  # cached
    assert ranker.name == "gpt-4o" and n_sent == len(instances) + 2
    assert all(body["model"] == "fake-4o" and body["temperature"] == 0.0 for body in server.requests)
    for x, r in zip(instances, rankings, strict=True):
        # the fake answers with the labels in shown order: a valid permutation in the shown order
        assert r.parsed and tuple(r.item_ids) == tuple(r.extra["shown_ids"])
        assert sorted(r.item_ids) == sorted(x.candidate_ids) and r.raw_output and r.prompt
    results = tmp_path / "rankings.jsonl"
    results.write_text("".join(json.dumps(asdict(r), default=list) + "\n" for r in rankings))
    for path in [results, *(p for p in (tmp_path / "cache").rglob("*") if p.is_file())]:
        assert SECRET not in path.read_text()
    assert SECRET not in caplog.text and "***" in caplog.text
