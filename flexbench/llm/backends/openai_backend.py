"""Generation through GPT-4o or any OpenAI-compatible endpoint (``openai`` client).

* The API key is read from the environment only (``OPENAI_API_KEY`` or the variable
  named by ``api_key_env``). It is handed to the client and nowhere else: it is not
  part of the cache key or cache files, and any error text is redacted before it is
  logged or raised.
* Requests run on a thread pool of ``concurrency`` workers (the sync client is
  thread-safe), each with its own retry loop: on 408/409/429, 5xx, timeouts and
  connection errors it sleeps ``u * min(cap, base * 2**attempt)`` with
  ``u ~ U[0.5, 1]`` ("equal jitter", Brooker 2015, *Exponential Backoff and
  Jitter*, AWS Architecture Blog), at least the server's ``Retry-After``, up to
  ``max_retries`` times. The client's own retries are off so this loop is the only one.
* Every response is cached on disk before it is returned
  (:class:`~flexbench.llm.response_cache.ResponseCache`, key = model, messages and
  sampling settings), so rerunning after a crash or a kill repeats no finished
  request.

Prompts may be strings (sent as one user message) or chat message sequences.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexbench import paths
from flexbench.errors import FlexBenchError
from flexbench.llm.backends.base import Generation, SamplingParams
from flexbench.llm.progress import progress_bar
from flexbench.llm.response_cache import ResponseCache, request_key

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 429})
PromptLike = str | Sequence[Mapping[str, str]]


class OpenAIRequestError(FlexBenchError):
    """A request failed for good (non-retryable error, or retries exhausted)."""


class MissingAPIKey(FlexBenchError):
    """No API key in the environment."""


@dataclass(frozen=True)
class OpenAIConfig:
    """Endpoint, concurrency and retry settings (the key itself is never part of a config)."""

    model: str = "gpt-4o"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    max_retries: int = 6
    timeout_s: float = 60.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    cache_dir: Path | None = None  # default <data>/cache/openai

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must name the endpoint's model, e.g. 'gpt-4o'")
        if self.concurrency < 1:
            raise ValueError(f"concurrency={self.concurrency}; it must be >= 1")
        if self.max_retries < 0:
            raise ValueError(f"max_retries={self.max_retries}; it must be >= 0")
        if self.timeout_s <= 0 or self.backoff_base_s < 0 or self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("timeout_s must be > 0 and 0 <= backoff_base_s <= backoff_cap_s")
        if not self.api_key_env.isidentifier():
            raise ValueError(f"api_key_env={self.api_key_env!r} is not an environment variable name")

    @property
    def cache_root(self) -> Path:
        """Directory of the response cache."""
        return self.cache_dir if self.cache_dir is not None else paths.cache_dir() / "openai"


def api_key_from_env(name: str = "OPENAI_API_KEY") -> str | None:
    """The key in environment variable ``name``, or ``None`` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Equal-jitter exponential backoff: ``u * min(cap, base * 2**attempt)``, ``u ~ U[0.5, 1]``."""
    return rng.uniform(0.5, 1.0) * min(cap, base * 2.0 ** attempt)


def is_retryable(exc: BaseException) -> bool:
    """Timeouts, connection errors, 408/409/429 and 5xx responses are worth retrying."""
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in RETRY_STATUS or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException) -> float:
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("retry-after", 0)) if response is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def to_messages(prompt: PromptLike) -> list[dict[str, str]]:
    """A string becomes one user message; a message sequence is copied."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


class OpenAIBackend:
    """:class:`~flexbench.llm.backends.base.GenerationBackend` over an OpenAI-compatible endpoint."""

    def __init__(self, config: OpenAIConfig | None = None, *, progress: bool = False,
                 **overrides: Any) -> None:
        self.config = config if config is not None else OpenAIConfig(**overrides)
        if config is not None and overrides:
            raise TypeError("pass either a config or keyword settings, not both")
        key = api_key_from_env(self.config.api_key_env)
        if key is None:
            raise MissingAPIKey(f"no API key: set the environment variable {self.config.api_key_env}")
        import openai

        self._secret = key
        self._client = openai.OpenAI(api_key=key, base_url=self.config.base_url,
                                     timeout=self.config.timeout_s, max_retries=0)
        self.cache = ResponseCache(self.config.cache_root)
        self.progress = progress
        self.n_requests = 0  # requests actually sent, retries included
        self._lock = threading.Lock()

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self._secret, "***") if self._secret else text

    def request_fields(self, messages: list[dict[str, str]], params: SamplingParams) -> dict[str, Any]:
        """What identifies a request (and its cache entry)."""
        return {"model": self.config.model, "messages": messages, "max_tokens": params.max_new_tokens,
                "temperature": params.temperature, "top_p": params.top_p, "n": params.n,
                "seed": params.seed}

    def generate(self, prompts: Sequence[PromptLike], params: SamplingParams,
                 candidate_ids: Sequence[Sequence[str]] | None = None) -> list[list[Generation]]:
        """``params.n`` generations per prompt, in input order, served from the cache when present."""
        if candidate_ids is not None:
            raise FlexBenchError("constrained decoding is not available through the OpenAI API; "
                                 "use a local model (zero-shot-constrained)")
        results: list[list[Generation] | None] = [None] * len(prompts)
        errors: list[BaseException] = []
        with progress_bar(f"querying {self.config.model}", len(prompts), self.progress) as advance, \
                ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = {pool.submit(self._one, to_messages(p), params, i): i for i, p in enumerate(prompts)}
            try:
                for future, i in futures.items():
                    try:
                        results[i] = future.result()
                    except OpenAIRequestError as exc:
                        errors.append(exc)
                    advance()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if errors:
            raise OpenAIRequestError(f"{len(errors)} of {len(prompts)} requests failed; finished ones "
                                     f"are cached, rerun to retry the rest. First error: {errors[0]}")
        return [r for r in results if r is not None]

    def _one(self, messages: list[dict[str, str]], params: SamplingParams, index: int) -> list[Generation]:
        fields = self.request_fields(messages, params)
        key = request_key(fields)
        cached = self.cache.get(key)
        if cached is None:
            cached = self._request(fields, index)
            self.cache.put(key, fields, cached)
        return [Generation(text=c["text"], token_ids=(), finish_reason=c["finish_reason"])
                for c in cached["choices"]]

    def _request(self, fields: dict[str, Any], index: int) -> dict[str, Any]:
        rng = random.Random(f"{fields['seed']}:{index}")
        for attempt in range(self.config.max_retries + 1):
            try:
                with self._lock:
                    self.n_requests += 1
                response = self._client.chat.completions.create(**fields)
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised redacted
                message = self.redact(f"{type(exc).__name__}: {exc}")
                if not is_retryable(exc) or attempt == self.config.max_retries:
                    raise OpenAIRequestError(f"request {index} to {self.config.model} failed after "
                                             f"{attempt + 1} attempt(s): {message}") from None
                delay = max(backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_cap_s,
                                          rng), min(self.config.backoff_cap_s, _retry_after(exc)))
                log.warning("request %d: %s; retry %d/%d in %.2f s", index, message, attempt + 1,
                            self.config.max_retries, delay)
                time.sleep(delay)
                continue
            return {"choices": [{"text": c.message.content or "", "finish_reason": c.finish_reason or "stop"}
                                for c in response.choices],
                    "model": response.model,
                    "usage": response.usage.model_dump() if response.usage is not None else None}
        raise AssertionError("unreachable")
