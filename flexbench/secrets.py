"""Keeping credentials out of everything FlexBench writes (results, provenance, caches, logs).

Credentials reach FlexBench through the environment only (``OPENAI_API_KEY``, or
the variable named by ``--set api_key_env=NAME``); they are never options,
because options are stored verbatim in each run's provenance. Two guards:

* :func:`check_options` refuses an option whose **key** names a credential, and
  one whose **value** has the shape of a well-known secret, with one line saying
  to use an environment variable instead. A key is split into lower-case words
  (``_``, ``-``, ``.``, spaces and camelCase humps separate them) and is a
  credential when

  - its last word is one of :data:`CREDENTIAL_WORDS` (``api_key`` is
    ``api key``, so ``apikey`` is listed: ``token``, ``password``, ``secret``,
    ``authorization``, ``cookie`` ...), or
  - its last word is ``key`` and it has no other word or the word before is one
    of :data:`KEY_QUALIFIERS` (``api_key``, ``secret-key``, ``privateKey``).

  A trailing ``env``, ``file``, ``path`` or ``name`` makes the option a
  *reference* to a credential, which is fine: ``api_key_env`` names a variable.
  Words merely containing these (``max_new_tokens``, ``tokenizer``) are not
  credentials. Values: :data:`SECRET_VALUE` (OpenAI ``sk-``, Hugging Face
  ``hf_``, GitHub ``ghp_``/``github_pat_``, Slack ``xox?-`` keys, ``Bearer``
  headers).
* :func:`redact_url` removes the userinfo of a URL (``http://user:token@host/``
  becomes ``http://host/``) and every query parameter whose name has a
  credential word or ``key``/``sig``/``signature``/``code`` among its words
  (``?api-key=..``, ``?access_token=..``, Azure's ``?sig=..``).
  :func:`redact_options` applies it to every URL-valued option, for provenance.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from flexbench.errors import FlexBenchError

CREDENTIAL_WORDS = frozenset({
    "apikey", "token", "password", "passwd", "pwd", "passphrase", "secret", "authorization", "auth",
    "bearer", "credential", "credentials", "cookie",
})
KEY_QUALIFIERS = frozenset({"api", "secret", "private", "access", "auth", "signing", "openai", "hf"})
REFERENCE_WORDS = frozenset({"env", "file", "path", "name", "var"})
QUERY_WORDS = CREDENTIAL_WORDS | {"key", "sig", "signature", "code"}
SECRET_VALUE = re.compile(r"^\s*(?:(?:sk|hf|ghp|gho|ghs|github_pat|xox[abprs])[-_][A-Za-z0-9_-]{12,}"
                          r"|bearer\s+\S{8,})\s*$", re.IGNORECASE)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def _words(name: str) -> list[str]:
    """Lower-case words of an option or parameter name (``apiKey_env`` -> ``api key env``)."""
    return [w.lower() for w in _WORD.findall(name)]


def is_credential_name(name: str) -> bool:
    """Whether option key ``name`` names a credential value (module docstring)."""
    words = _words(name)
    if not words or words[-1] in REFERENCE_WORDS:
        return False
    if words[-1] in CREDENTIAL_WORDS:
        return True
    return words[-1] == "key" and (len(words) == 1 or words[-2] in KEY_QUALIFIERS)


def check_options(options: Mapping[str, Any]) -> None:
    """Raise :class:`FlexBenchError` for the first option that is, or holds, a credential."""
    for key, value in options.items():
        name = str(key)
        if is_credential_name(name) or (isinstance(value, str) and SECRET_VALUE.match(value)):
            raise FlexBenchError(
                f"option {name!r} looks like a credential; options are stored in the run's provenance, so "
                f"FlexBench takes secrets from the environment only: export it (the API key of gpt-4o is "
                f"read from OPENAI_API_KEY, or from the variable named by --set api_key_env=NAME)")


def _secret_param(name: str) -> bool:
    return any(w in QUERY_WORDS for w in _words(name))


def redact_url(url: str) -> str:
    """``url`` without userinfo and without credential-looking query parameters; other text unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(_secret_param(name) for name, _ in pairs):
        query = urlencode([(name, value) for name, value in pairs if not _secret_param(name)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``(url without userinfo, (user, password) or None)``: the credentials to send as HTTP Basic auth."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), (unquote(user),
                                                                                        unquote(password))


def url_secrets(url: str) -> list[str]:
    """The credential substrings of ``url`` (userinfo, its password, secret query values), longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        password = userinfo.partition(":")[2]
        found += [userinfo, password, unquote(userinfo), unquote(password)]
    found += [value for name, value in parse_qsl(parts.query, keep_blank_values=True) if _secret_param(name)]
    return sorted({s for s in found if s}, key=lambda s: (-len(s), s))


def redact_options(value: Any) -> Any:
    """``value`` (options, or any JSON-like value) with :func:`redact_url` applied to every URL string."""
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: redact_options(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_options(v) for v in value)
    return value
