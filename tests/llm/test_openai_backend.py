"""OpenAI backend against a loopback fake server: retries, cache, kill-and-rerun, no key leaks."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer

from flexbench.llm.backends.base import SamplingParams
from flexbench.llm.backends.openai_backend import (
    MissingAPIKey,
    OpenAIBackend,
    OpenAIConfig,
    OpenAIRequestError,
    backoff_delay,
)

pytestmark = pytest.mark.network
SECRET = "sk-test-DO-NOT-LEAK-7f3a9c1e5b"
PROMPTS = [f"Candidates (each has an ID in square brackets):\n[{i}] item {i}\n[{i + 1}] other" for i in range(1, 9)]


@pytest.fixture()
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return SECRET


def _config(server: FakeOpenAIServer, cache: Path, **kw) -> OpenAIConfig:
    base = {"model": "fake-4o", "base_url": server.base_url, "timeout_s": 0.5, "backoff_base_s": 0.01,
            "backoff_cap_s": 0.05, "cache_dir": cache, "concurrency": 3}
    return OpenAIConfig(**{**base, **kw})


def _assert_no_secret(*places: Path | str) -> None:
    for place in places:
        if isinstance(place, Path):
            for f in [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]:
                assert SECRET not in f.read_text(errors="replace"), f
        else:
            assert SECRET not in place


def test_backoff_grows_with_jitter() -> None:
    rng = random.Random(0)
    delays = [backoff_delay(a, 1.0, 60.0, rng) for a in range(8)]
    for attempt, d in enumerate(delays):
        cap = min(60.0, 2.0 ** attempt)
        assert 0.5 * cap <= d <= cap


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="MY_KEY"):
        OpenAIBackend(api_key_env="MY_KEY")


def test_injected_failures_are_retried_and_the_run_completes(
        secret_env: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    failures = ["429", "500", "timeout", "503", "429"]
    with FakeOpenAIServer(failures=failures, timeout_sleep_s=1.5, leak_auth_in_errors=True) as server:
        backend = OpenAIBackend(_config(server, tmp_path / "cache"))
        out = backend.generate(PROMPTS, SamplingParams(max_new_tokens=32))
    assert [g[0].text for g in out] == [f"[{i}]\n[{i + 1}]\n" for i in range(1, 9)]
    assert server.outcomes[:5] == failures and server.outcomes.count("ok") == len(PROMPTS)
    assert backend.n_requests == len(PROMPTS) + len(failures)
    assert all(h == f"Bearer {SECRET}" for h in server.auth_headers)  # the key did reach the server
    assert "retry" in caplog.text and "***" in caplog.text  # leaked error bodies were redacted
    _assert_no_secret(tmp_path / "cache", caplog.text)


def test_cached_prompts_are_not_requested_again(secret_env: str, tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        params = SamplingParams(max_new_tokens=32)
        first = OpenAIBackend(_config(server, tmp_path)).generate(PROMPTS[:4], params)
        again = OpenAIBackend(_config(server, tmp_path))
        second = again.generate(PROMPTS, params)
        assert len(server.requests) == len(PROMPTS)  # 4 + the 4 new ones
        assert second[:4] == first
        other = OpenAIBackend(_config(server, tmp_path)).generate(PROMPTS[:1], SamplingParams(max_new_tokens=33))
        assert len(server.requests) == len(PROMPTS) + 1 and other[0][0].text  # settings are in the key


def test_non_retryable_failure_keeps_finished_work(secret_env: str, tmp_path: Path) -> None:
    with FakeOpenAIServer(failures=["500"] * 3) as server:
        backend = OpenAIBackend(_config(server, tmp_path, max_retries=1, concurrency=1))
        with pytest.raises(OpenAIRequestError, match="rerun"):
            backend.generate(PROMPTS[:3], SamplingParams())
        assert len(list(tmp_path.rglob("*.json"))) == 2  # prompt 0 failed twice; 1 and 2 are cached


_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from flexbench.llm.backends.base import SamplingParams
    from flexbench.llm.backends.openai_backend import OpenAIBackend, OpenAIConfig
    prompts = [f"Candidates:\\n[{i}] item" for i in range(1, 13)]
    cfg = OpenAIConfig(model="fake-4o", base_url=sys.argv[1], cache_dir=Path(sys.argv[2]), concurrency=1,
                       timeout_s=5.0, backoff_base_s=0.01)
    OpenAIBackend(cfg).generate(prompts, SamplingParams(max_new_tokens=16))
    print("finished")
""")


def test_kill_and_rerun_repeats_no_cached_request(secret_env: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with FakeOpenAIServer(delay_s=0.2) as server:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, server.base_url, str(cache)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "OPENAI_API_KEY": SECRET})
        deadline = time.monotonic() + 60
        while server.completed < 4 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
        assert "finished" not in out and server.completed >= 4
        cached = {p.stem for p in cache.rglob("*.json")}
        assert 2 <= len(cached) < 12  # a response sent just before the kill may be unsaved
        sent_before = len(server.requests)
        prompts = [f"Candidates:\n[{i}] item" for i in range(1, 13)]
        backend = OpenAIBackend(OpenAIConfig(model="fake-4o", base_url=server.base_url, cache_dir=cache))
        result = backend.generate(prompts, SamplingParams(max_new_tokens=16))
        rerun = server.requests[sent_before:]
    assert [g[0].text for g in result] == [f"[{i}]\n" for i in range(1, 13)]
    asked = {r["messages"][0]["content"] for r in rerun}
    done_before = {p for p in prompts if _key(backend, p) in cached}
    assert len(rerun) == 12 - len(cached) and not asked & done_before
    _assert_no_secret(cache, out, err)


def _key(backend: OpenAIBackend, prompt: str) -> str:
    from flexbench.llm.response_cache import request_key

    return request_key(backend.request_fields([{"role": "user", "content": prompt}],
                                              SamplingParams(max_new_tokens=16)))
