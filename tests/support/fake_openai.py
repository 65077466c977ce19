"""A loopback fake of the OpenAI chat completions endpoint, for tests only (not shipped in the package).

``FakeOpenAIServer`` listens on ``127.0.0.1`` (an ephemeral port), answers
``POST /v1/chat/completions`` with a well-formed ``chat.completion`` object and
can inject failures from a script, one entry per incoming request in arrival
order: ``"429"`` (rate limit, ``Retry-After: 0``), ``"500"``, ``"503"``,
``"timeout"`` (answers only after ``timeout_sleep_s``, past the client's timeout),
``"badjson"`` (status 200 with a truncated, malformed JSON body) or ``"ok"``. By default the answer lists the candidate labels of the prompt in the
order shown (:func:`echo_labels`), so a run through it completes with valid
permutations. Every request body and ``Authorization`` header is recorded.

With ``leak_auth_in_errors=True`` error bodies quote the request's
``Authorization`` header, to check that clients redact what they log.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

_CANDIDATE_LINE = re.compile(r"^\[(\d+)\] ", re.MULTILINE)


def echo_labels(body: dict[str, Any]) -> str:
    """Answer with the candidate labels of the last user message, in the order shown."""
    user = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"]
    labels = _CANDIDATE_LINE.findall(user[-1]) if user else []
    return "".join(f"[{label}]\n" for label in labels)


class FakeOpenAIServer:
    """Context manager running the fake endpoint on a background thread."""

    def __init__(self, *, failures: Sequence[str] = (), responder: Callable[[dict[str, Any]], str] = echo_labels,
                 delay_s: float = 0.0, timeout_sleep_s: float = 2.0, leak_auth_in_errors: bool = False) -> None:
        self.failures = list(failures)
        self.responder = responder
        self.delay_s = delay_s
        self.timeout_sleep_s = timeout_sleep_s
        self.leak_auth_in_errors = leak_auth_in_errors
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        self.outcomes: list[str] = []
        self.completed = 0  # successful answers sent
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        if self._server is None:
            raise RuntimeError("the server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _next_outcome(self, body: dict[str, Any], auth: str) -> str:
        with self._lock:
            n = len(self.requests)
            self.requests.append(body)
            self.auth_headers.append(auth)
            outcome = self.failures[n] if n < len(self.failures) else "ok"
            self.outcomes.append(outcome)
            return outcome

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # silence stderr
                return

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._send_raw(status, json.dumps(payload).encode(), headers)

            def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def do_POST(self) -> None:  # http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                auth = self.headers.get("Authorization", "")
                outcome = fake._next_outcome(body, auth)
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if outcome in ("429", "500", "503"):
                    detail = f" (request had {auth})" if fake.leak_auth_in_errors else ""
                    self._send(int(outcome), {"error": {"message": f"injected {outcome}{detail}",
                                                        "type": "fake", "code": outcome}},
                               {"Retry-After": "0"} if outcome == "429" else None)
                    return
                if outcome == "badjson":
                    self._send_raw(200, b'{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{"ind')
                    return
                time.sleep(fake.timeout_sleep_s if outcome == "timeout" else fake.delay_s)
                choices = [{"index": i, "message": {"role": "assistant", "content": fake.responder(body)},
                            "finish_reason": "stop"} for i in range(int(body.get("n", 1)))]
                self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                                 "model": body.get("model", "fake"), "choices": choices,
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
                with fake._lock:
                    fake.completed += 1

        return Handler

    def start(self) -> Self:
        """Start listening; returns ``self``."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server and close its socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
