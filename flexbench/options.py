"""Names and options: the one lookup helper and the one option parser of the project.

Every registry (rankers, trainers, training methods, needs, datasets) resolves a
user-given name with :func:`lookup`, which raises one :class:`FlexBenchError`
with close matches ("did you mean"). Every config dataclass built from
``--set key=value`` / ``--config FILE`` options (``TrainConfig``,
``CriticConfig``, ``BERT4RecConfig`` ...) goes through :func:`parse_options`,
which converts each value by the *field's own type annotation*, so option
parsing follows the dataclass and never repeats a default:

* ``int``: an integer (``3``, ``"3"``, ``3.0``); ``2.7``, ``true`` and ``"x"`` are errors;
* ``float``: a finite number (``1e-6`` and ``"1e-6"`` -- YAML 1.1 reads the latter
  as a string -- ``3``); booleans, ``.inf`` and ``.nan`` are errors;
* ``bool``: ``true``/``false`` (also the strings ``"true"``, ``"false"``, ``"yes"``, ``"no"``);
* ``str``: a string; a ``StrEnum``: one of its values;
* ``X | None``: ``null``/``none`` (any case) or an ``X``;
* ``tuple[X, ...]`` / ``tuple[X, Y]``: a list or a comma-separated string of ``X``.

A bad value is one line naming the option, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar

from flexbench.errors import FlexBenchError

T = TypeVar("T")
_NONE_WORDS = frozenset({"null", "none", "~"})
_TRUE, _FALSE = frozenset({"true", "yes", "on"}), frozenset({"false", "no", "off"})


def suggest(name: str, known: Iterable[str], n: int = 3, cutoff: float = 0.6) -> str:
    """``" Did you mean 'a', 'b'?"`` for the close matches of ``name`` in ``known``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def lookup(table: Mapping[str, T], name: str, *, what: str, error: type[FlexBenchError] = FlexBenchError,
           hint: str | None = None) -> T:
    """``table[name]``, or ``error`` naming ``what`` with close matches and ``hint`` (default: the known names)."""
    try:
        return table[name]
    except KeyError:
        tail = hint if hint is not None else f"Known: {', '.join(table)}."
        raise error(f"unknown {what} {name!r}.{suggest(name, table, cutoff=0.5)} {tail}".rstrip()) from None


def check_keys(keys: Iterable[str], known: Iterable[str], *, what: str) -> None:
    """Raise for the first key not in ``known`` (``what``: e.g. ``"train option"``), with close matches."""
    known = list(known)
    for key in keys:
        if key not in known:
            raise FlexBenchError(f"unknown {what} {key!r}.{suggest(key, known)} Known: {', '.join(sorted(known))}.")


def parse_options(cls: type[Any], options: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """Field values of dataclass ``cls`` from ``options``, each converted by the field's annotation.

    Unknown keys and unconvertible values raise :class:`FlexBenchError` naming
    ``what`` (e.g. ``"train option"``) and the key. Range checks stay in the
    dataclass's ``__post_init__``.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(options, fields, what=what)
    hints = typing.get_type_hints(cls)
    return {key: convert(value, hints[key], f"{what} {key}") for key, value in options.items()}


def convert(value: Any, annotation: Any, label: str) -> Any:
    """``value`` converted to ``annotation`` (see the module docstring); ``label`` names it in errors."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS)
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return convert(value, inner[0], label)
        raise TypeError(f"{label}: unions other than X | None are not supported")
    if origin is tuple:
        return _tuple(value, args, label)
    if annotation is Any:
        return value
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _enum(value, annotation, label)
    parser = _SCALARS.get(annotation)
    if parser is None:
        raise TypeError(f"{label}: no option parser for {annotation!r}")
    return parser(value, label)


def _int(value: Any, label: str) -> int:
    if isinstance(value, bool):
        raise _bad(label, value, "an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _bad(label, value, "an integer")


def _float(value: Any, label: str) -> float:
    if isinstance(value, bool):
        raise _bad(label, value, "a finite number")
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise _bad(label, value, "a finite number") from None
    if not math.isfinite(out):
        raise _bad(label, value, "a finite number")
    return out


def _bool(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(label, value, "true or false")


def _str(value: Any, label: str) -> str:
    if isinstance(value, str):
        return value
    raise _bad(label, value, "a string")


_SCALARS: dict[Any, Any] = {int: _int, float: _float, bool: _bool, str: _str}


def _enum(value: Any, enum: type[Enum], label: str) -> Enum:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in enum)  # type: ignore[attr-defined]
        raise _bad(label, value, f"one of {choices}") from None


def _tuple(value: Any, args: tuple[Any, ...], label: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise _bad(label, value, "a list")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(convert(v, args[0], label) for v in items)
    if len(items) != len(args):
        raise _bad(label, value, f"a list of {len(args)} values")
    return tuple(convert(v, a, label) for v, a in zip(items, args, strict=True))


def _bad(label: str, value: Any, expected: str) -> FlexBenchError:
    shown = repr(value) if not isinstance(value, str) else repr(value[:80])
    return FlexBenchError(f"{label} must be {expected}, got {shown}")
