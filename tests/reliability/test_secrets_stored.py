"""Secrets are never stored: a credential option is refused, URL userinfo is redacted, files grepped."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexbench.cli import app
from flexbench.llm.fake_openai import FakeOpenAIServer

runner = CliRunner()
ENV_KEY, URL_TOKEN, SET_KEY = "sk-env-PLANTED-7f3a", "tok3n-PLANTED-c91e", "sk-set-PLANTED-22b0"


def _written(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.network
def test_no_planted_secret_reaches_any_written_file(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    refused = runner.invoke(app, ["eval", "gpt-4o", "--dataset", "mock", "--need", "interest", "--limit", "2",
                                  "--set", f"api_key={SET_KEY}"])
    assert refused.exit_code != 0 and "api_key" in str(refused.exception)
    assert not (data_root / "results").exists()  # refused before anything was stored
    with FakeOpenAIServer() as server:
        url = server.base_url.replace("http://", f"http://user:{URL_TOKEN}@")
        done = runner.invoke(app, ["eval", "gpt-4o", "--dataset", "mock", "--need", "interest", "--limit", "2",
                                   "--base-url", url, "--set", "progress=false"])
    assert done.exit_code == 0, done.output
    files = _written(data_root)
    assert any(p.suffix == ".jsonl" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in (ENV_KEY, URL_TOKEN, SET_KEY):
            assert secret.encode() not in data, f"{secret} written to {path}"
    assert URL_TOKEN not in done.output and ENV_KEY not in done.output
