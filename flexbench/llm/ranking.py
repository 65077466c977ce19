"""Shared glue of the LLM rankers: CLI options -> config, and generations -> rankings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from flexbench.errors import FlexBenchError
from flexbench.llm.backends.base import Generation
from flexbench.llm.parsing import parse_ranking
from flexbench.llm.prompts import Prompt
from flexbench.types import Instance, Ranking

C = TypeVar("C")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _coerce(name: str, value: Any, kind: str) -> Any:
    if value is None or kind.startswith("str"):
        return value if value is None else str(value)
    try:
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in _TRUE | _FALSE:
                raise ValueError(value)
            return text in _TRUE
        if "int" in kind:
            return int(value)
        if "float" in kind:
            return float(value)
    except ValueError:
        raise FlexBenchError(f"option {name}={value!r} is not a valid {kind.split(' ')[0]}") from None
    return value


def config_from_options(cls: type[C], options: Mapping[str, Any], **overrides: Any) -> C:
    """Build the frozen config ``cls`` from ranker options, coercing CLI strings by field type.

    Options that are not fields of ``cls`` are ignored: the CLI passes the same
    options to every ranker of a run.
    """
    values = dict(overrides)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in options and options[f.name] is not None:
            values[f.name] = _coerce(f.name, options[f.name], str(f.type))
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise FlexBenchError(f"invalid options for {cls.__name__}: {exc}") from None


def to_ranking(instance: Instance, prompt: Prompt, generation: Generation) -> Ranking:
    """The ranking an LLM emitted for ``instance``: emitted IDs, raw text, prompt and parse status.

    The text is parsed in the prompt's mode; ``extra["reasoning_chars"]`` is the
    number of characters before the parsed list (``None`` when unparsed) and
    ``extra["parse_failure"]`` why a parse failed (``"no-list"``, ``"too-long"``).
    """
    parsed = parse_ranking(generation.text, instance.candidate_ids, mode=prompt.mode)
    return Ranking(
        instance_id=instance.instance_id, item_ids=parsed.emitted_ids, raw_output=generation.text,
        parsed=parsed.parsed, prompt=prompt.text,
        extra={"n_invalid": parsed.n_invalid, "n_duplicate": parsed.n_duplicate,
               "finish_reason": generation.finish_reason, "n_tokens": len(generation.token_ids),
               "shown_ids": list(prompt.shown_ids), "labels": list(prompt.labels),
               "prompt_mode": prompt.mode.value, "reasoning_chars": parsed.answer_start,
               "parse_failure": parsed.failure},
    )
