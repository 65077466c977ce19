"""Secrets never stored (issue 16 item 6): credential options refused, URL credentials redacted, files grepped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer
from typer.testing import CliRunner

from flexbench.cli import app
from flexbench.errors import FlexBenchError
from flexbench.secrets import check_options, is_credential_name, redact_options, redact_url, url_secrets

ENV_KEY = "sk-env-key-never-stored-5b7e"
PLANTED_TOKEN = "planted-url-token-93c1"
PLANTED_KEY = "sk-planted-option-key-0a4f9d2c"

CREDENTIAL_KEYS = ["api_key", "API_KEY", "apiKey", "api-key", "apikey", "openai_api_key", "token", "hf_token",
                   "access_token", "password", "db.password", "secret", "client_secret", "authorization",
                   "auth", "bearer", "credentials", "cookie", "key", "secret_key", "privateKey", "passwd"]
FINE_KEYS = ["api_key_env", "model", "max_new_tokens", "tokenizer", "base_url", "prompt_mode", "label",
             "token_budget", "keys", "secret_env", "password_file", "monkey", "batch_size", "auth_env"]


@pytest.mark.parametrize("key", CREDENTIAL_KEYS)
def test_credential_option_keys_are_refused(key: str) -> None:
    assert is_credential_name(key)
    with pytest.raises(FlexBenchError, match="environment") as err:
        check_options({"model": "gpt-4o", key: "whatever"})
    assert "whatever" not in str(err.value) and key in str(err.value)


@pytest.mark.parametrize("key", FINE_KEYS)
def test_ordinary_option_keys_pass(key: str) -> None:
    assert not is_credential_name(key)
    check_options({key: "some value"})


@pytest.mark.parametrize("value", ["sk-proj-abcdefghijklmnop1234", "hf_abcdefghijklmnopqrstu", "Bearer abc.def.ghi",
                                   "ghp_0123456789abcdefABCD", "xoxb-1234567890-abcdef"])
def test_secret_shaped_values_are_refused_under_any_key(value: str) -> None:
    with pytest.raises(FlexBenchError, match="'note'"):
        check_options({"note": value})
    check_options({"note": "sk-short", "model": "hf_model_name"})  # not the shape of a key


@pytest.mark.parametrize(("url", "redacted"), [
    ("http://user:tok@host:8000/v1", "http://host:8000/v1"),
    ("https://tok@api.example.com/v1/", "https://api.example.com/v1/"),
    ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"),
    ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
    ("http://u:pw%40x@[::1]:8080/v1?api-version=2024-06&api-key=XYZ", "http://[::1]:8080/v1?api-version=2024-06"),
    ("https://h/v1?sig=abc123&sv=2022&access_token=tok-9&x=1#frag", "https://h/v1?sv=2022&x=1#frag"),
    ("not a url", "not a url"),
    ("", ""),
])
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
    for secret in url_secrets(url):
        assert secret not in redact_url(url)


def test_url_secrets_and_redact_options() -> None:
    assert url_secrets("http://alice:pw@h/?key=K1") == ["alice:pw", "K1", "pw"]
    assert url_secrets("http://u:p%40ss@h/") == ["u:p%40ss", "p%40ss", "u:p@ss", "p@ss"]
    options = {"base_url": "http://a:b@h/v1", "nested": {"urls": ["https://x:y@z/"]}, "n": 3, "model": "m"}
    assert redact_options(options) == {"base_url": "http://h/v1", "nested": {"urls": ["https://z/"]}, "n": 3,
                                       "model": "m"}


def _eval_gpt4o(server: FakeOpenAIServer, base_url: str, *extra: str) -> object:
    args = ["eval", "gpt-4o", "--dataset", "mock", "--need", "interest", "--limit", "3", "--base-url", base_url,
            "--set", "progress=false", "--set", "backoff_base_s=0.01", *extra]
    return CliRunner().invoke(app, args)


def _files_holding(root: Path, secrets: list[str]) -> list[str]:
    return [f"{p.relative_to(root)}: {s}" for p in root.rglob("*") if p.is_file()
            for s in secrets if s.encode() in p.read_bytes()]


def test_gpt4o_records_the_endpoint_without_its_credentials(data_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """What the ranker and backend write themselves: provenance ``endpoint``, cache, records, logs."""
    from flexbench.catalog import open_dataset
    from flexbench.ranker import RankerContext, build_ranker
    from flexbench.vocabulary import INTEREST

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)

    with FakeOpenAIServer(failures=["500"], leak_auth_in_errors=True) as server:
        url = server.base_url.replace("http://", f"http://alice:{PLANTED_TOKEN}@")
        ranker = build_ranker("gpt-4o", RankerContext(open_dataset("mock"), options={
            "base_url": url, "progress": False, "backoff_base_s": 0.01}, cache_dir=data_root / "cache"))
        rankings = ranker.rank(open_dataset("mock").instances("test", limit=2), INTEREST)
        clean_url = server.base_url
    provenance = ranker.provenance("interest") if callable(ranker.provenance) else ranker.provenance
    assert provenance["endpoint"] == clean_url and provenance["prompt_version"] >= 2
    assert all(r.parsed for r in rankings)
    assert not _files_holding(data_root, [PLANTED_TOKEN, ENV_KEY])
    assert PLANTED_TOKEN not in caplog.text and ENV_KEY not in caplog.text


def test_no_file_written_by_eval_holds_a_planted_url_credential(data_root: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    with FakeOpenAIServer() as server:
        result = _eval_gpt4o(server, server.base_url.replace("http://", f"http://alice:{PLANTED_TOKEN}@"))
    assert result.exit_code == 0, result.output
    assert PLANTED_TOKEN not in result.output
    assert not _files_holding(data_root, [PLANTED_TOKEN, ENV_KEY])


def test_a_credential_option_is_refused_before_anything_is_stored(data_root: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    with FakeOpenAIServer() as server:
        result = _eval_gpt4o(server, server.base_url, "--set", f"api_key={PLANTED_KEY}")
        assert not server.requests
    message = str(result.exception)
    assert result.exit_code != 0 and "environment" in message
    assert PLANTED_KEY not in result.output and PLANTED_KEY not in message
    assert not _files_holding(data_root, [PLANTED_KEY, ENV_KEY])
