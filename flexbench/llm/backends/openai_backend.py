"""Generation through GPT-4o or any OpenAI-compatible endpoint (``openai`` client).

* The API key is read from the environment only (``OPENAI_API_KEY`` or the variable
  named by ``api_key_env``). It is handed to the client and nowhere else: it is not
  part of the cache key or cache files, and any error text is redacted before it is
  logged or raised, as are credentials in ``base_url`` (userinfo, secret query
  parameters; :func:`flexbench.secrets.redact_url` gives the URL as recorded).
  Userinfo is sent as HTTP Basic auth (what a URL with userinfo means) rather than
  in the URL, and the HTTP client's request log lines are redacted too.
* Requests run on a thread pool of ``concurrency`` workers (the sync client is
  thread-safe), each with its own retry loop: on 408/409/429, 5xx, timeouts,
  transient connection errors (reset, EOF) and malformed JSON bodies it sleeps ``u * min(cap, base * 2**attempt)``
  with ``u ~ U[0.5, 1]`` ("equal jitter", Brooker 2015, *Exponential Backoff and
  Jitter*, AWS Architecture Blog), at least the server's ``Retry-After``, up to
  ``max_retries`` times. The client's own retries are off so this loop is the only one.
* Errors that no retry can fix fail at once: other 4xx statuses, and a refused
  connection or an unknown host (:func:`endpoint_failure`), which would fail every
  request alike, so the remaining requests are cancelled and one line names the
  endpoint and the cause.
* Every response is cached on disk before it is returned
  (:class:`~flexbench.llm.response_cache.ResponseCache`, key = model, messages and
  sampling settings), so rerunning after a crash or a kill repeats no finished
  request.

Prompts may be strings (sent as one user message) or chat message sequences.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
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
from flexbench.llm.response_cache import ResponseCache, request_key, valid_unicode
from flexbench.secrets import redact_url, split_userinfo, url_secrets

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 409, 429})
PromptLike = str | Sequence[Mapping[str, str]]


class OpenAIRequestError(FlexBenchError):
    """A request failed for good (non-retryable error, or retries exhausted)."""


class EndpointUnreachable(OpenAIRequestError):
    """The endpoint cannot serve any request (connection refused, unknown host, auth or route error)."""


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


class _LogRedaction(logging.Filter):
    """Redacts registered secrets from the HTTP client's log records (it logs every request URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for secret in sorted(self.secrets, key=len, reverse=True):
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


_LOG_REDACTION = _LogRedaction()
_CLIENT_LOGGERS = ("httpx2", "httpx", "openai")


def _redact_client_logs(secrets: Sequence[str]) -> None:
    _LOG_REDACTION.secrets.update(s for s in secrets if s)
    for name in _CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if _LOG_REDACTION not in logger.filters:
            logger.addFilter(_LOG_REDACTION)


def endpoint_host(url: str) -> str:
    """``host[:port]`` of an endpoint URL (pass the redacted URL: no userinfo is ever returned)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def api_key_from_env(name: str = "OPENAI_API_KEY") -> str | None:
    """The key in environment variable ``name``, or ``None`` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Equal-jitter exponential backoff: ``u * min(cap, base * 2**attempt)``, ``u ~ U[0.5, 1]``."""
    return rng.uniform(0.5, 1.0) * min(cap, base * 2.0 ** attempt)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def endpoint_failure(exc: BaseException) -> str | None:
    """Why no request to this endpoint can succeed, or ``None`` when ``exc`` may be specific or transient.

    A refused connection, a host name that does not resolve (any ``getaddrinfo``
    error but the temporary ``EAI_AGAIN``) and HTTP 401/403/404 fail every request alike.
    """
    import openai

    if isinstance(exc, openai.APIStatusError) and exc.status_code in (401, 403, 404):
        return f"HTTP {exc.status_code}"
    if not isinstance(exc, openai.APIConnectionError) or isinstance(exc, openai.APITimeoutError):
        return None
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror) and cause.errno != socket.EAI_AGAIN:
            return f"host not found ({cause.strerror or cause})"
    return None


def is_retryable(exc: BaseException) -> bool:
    """Timeouts, transient connection errors, 408/409/429, 5xx responses and a malformed (truncated) JSON
    body are worth retrying."""
    import openai

    if endpoint_failure(exc) is not None:
        return False
    if isinstance(exc, json.JSONDecodeError):
        return True
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

        self._secrets = [key, *url_secrets(self.config.base_url or "")]
        _redact_client_logs(self._secrets)
        self.endpoint = redact_url(self.config.base_url or "https://api.openai.com/v1")  # as recorded
        url, basic = split_userinfo(self.config.base_url) if self.config.base_url else (None, None)
        self._client = openai.OpenAI(api_key=key, base_url=url, timeout=self.config.timeout_s, max_retries=0,
                                     http_client=openai.DefaultHttpxClient(auth=basic) if basic else None)
        self.cache = ResponseCache(self.config.cache_root)
        self.progress = progress
        self.n_requests = 0  # requests actually sent, retries included
        self._lock = threading.Lock()

    def redact(self, text: str) -> str:
        """``text`` with the API key and any base-URL credential replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

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
                    except EndpointUnreachable:
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
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
        return [Generation(text=valid_unicode(c["text"]), token_ids=(), finish_reason=c["finish_reason"])
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
                unreachable = endpoint_failure(exc)
                if unreachable is not None:
                    raise EndpointUnreachable(f"cannot use the endpoint {self.endpoint} of {self.config.model}: "
                                              f"{unreachable}; check --base-url and the API key "
                                              f"({self.config.api_key_env})") from None
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
