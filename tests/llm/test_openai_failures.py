"""OpenAI backend: fast failure for errors no retry can fix, and answers that are not valid Unicode."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer

from flexbench.llm.backends.base import SamplingParams
from flexbench.llm.backends.openai_backend import (
    EndpointUnreachable,
    OpenAIBackend,
    OpenAIConfig,
    endpoint_failure,
    is_retryable,
)
from flexbench.llm.response_cache import ResponseCache, request_key, valid_unicode

pytestmark = pytest.mark.network
SECRET = "sk-test-failures-DO-NOT-LEAK-4d1e"
PROMPTS = [f"Candidates:\n[{i}] item" for i in range(1, 7)]


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_a_refused_connection_fails_at_once_with_one_clear_line(tmp_path: Path) -> None:
    """Default retry settings (6 retries, 1 s base): before, 45 s of backoff; now one attempt per request."""
    url = f"http://alice:url-token-77@127.0.0.1:{_closed_port()}/v1"
    backend = OpenAIBackend(OpenAIConfig(model="fake-4o", base_url=url, cache_dir=tmp_path))
    start = time.monotonic()
    with pytest.raises(EndpointUnreachable) as err:
        backend.generate(PROMPTS, SamplingParams(max_new_tokens=8))
    assert time.monotonic() - start < 2.0
    message = str(err.value)
    assert "connection refused" in message and "127.0.0.1" in message and "\n" not in message
    assert "url-token-77" not in message and SECRET not in message  # the endpoint is shown redacted
    assert backend.n_requests <= len(PROMPTS)  # no retries
    assert not list(tmp_path.rglob("*.json"))


def _status_error(code: int):
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return openai.APIStatusError(f"status {code}", response=httpx2.Response(code, request=request), body=None)


@pytest.mark.parametrize(("code", "retry", "unreachable"), [
    (400, False, False), (401, False, True), (403, False, True), (404, False, True), (422, False, False),
    (408, True, False), (409, True, False), (429, True, False), (500, True, False), (503, True, False)])
def test_status_codes_are_classified(code: int, retry: bool, unreachable: bool) -> None:
    exc = _status_error(code)
    assert is_retryable(exc) is retry
    assert (endpoint_failure(exc) is not None) is unreachable


def test_an_unknown_host_and_a_timeout_are_told_apart() -> None:
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://no-such-host.invalid/v1")
    for errno, fails in ((socket.EAI_NONAME, True), (socket.EAI_AGAIN, False)):
        dns = openai.APIConnectionError(request=request)
        dns.__cause__ = socket.gaierror(errno, "lookup failed")
        assert (endpoint_failure(dns) is not None) is fails and is_retryable(dns) is not fails
    timeout = openai.APITimeoutError(request=request)
    assert endpoint_failure(timeout) is None and is_retryable(timeout)


def test_a_lone_surrogate_is_cached_and_served_on_rerun(tmp_path: Path) -> None:
    answer = "[1]\n[2]\n\ud800"
    with FakeOpenAIServer(responder=lambda body: answer) as server:
        config = OpenAIConfig(model="fake-4o", base_url=server.base_url, cache_dir=tmp_path, concurrency=1)
        first = OpenAIBackend(config).generate(PROMPTS[:2], SamplingParams(max_new_tokens=8))
        sent = len(server.requests)
        again = OpenAIBackend(config).generate(PROMPTS[:2], SamplingParams(max_new_tokens=8))
        assert len(server.requests) == sent == 2  # the rerun came from the cache
    assert first == again and first[0][0].text == "[1]\n[2]\n\ufffd"
    stored = [json.loads(p.read_text(encoding="ascii")) for p in tmp_path.rglob("*.json")]
    assert [s["response"]["choices"][0]["text"] for s in stored] == [answer, answer]  # exact answer kept


def test_cache_round_trips_any_string(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    texts = ["\ud800", "a\udfffb", "\ud800\ud800", "中文 ✓", "\x00nul", "😀"]
    for text in texts:
        key = request_key({"messages": [{"content": text}]})
        cache.put(key, {"messages": [{"content": text}]}, {"choices": [{"text": text}]})
        assert cache.get(key) == {"choices": [{"text": text}]}
    pair = "\ud83d\ude00"  # a surrogate pair as two code points reads back joined, as JSON defines
    cache.put("cd" * 32, {}, {"text": pair})
    assert cache.get("cd" * 32) == {"text": "😀"}
    assert request_key({"x": "é"}) == request_key({"x": "é"})  # valid text: the same key as before
    import hashlib

    assert request_key({"x": "é"}) == hashlib.sha256('{"x":"é"}'.encode()).hexdigest()
    (tmp_path / "ab").mkdir(exist_ok=True)
    (tmp_path / "ab" / f"{'ab' * 32}.json").write_bytes(b"\xff\xfe not utf-8")
    assert cache.get("ab" * 32) is None  # unreadable counts as missing


def test_valid_unicode_replaces_only_lone_surrogates() -> None:
    assert valid_unicode("ok") == "ok"
    assert valid_unicode("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert valid_unicode("\ud83d\ude00") == "😀"
