"""Prompt construction: one instance and one need -> a chat prompt with labelled candidates.

Layout of the user message (SPEC sections 1 and 5)::

    Task: <need title>. <need instruction>

    The user's recent history, oldest first, with engagement:      (or: Shopping query: ...)
    - <item text> (engagement 1.27)
    ...

    Candidates (each has an ID in square brackets):
    [17] <item text>
    [4] <item text>
    ...

    Rank all K candidates for this need, best first. Answer with the candidate IDs in
    square brackets, one per line, each exactly once, and nothing else. ...

The last paragraph (the *answer format*) depends on the prompt mode
(:class:`~flexbench.llm.labels.PromptMode`), decided here and nowhere else:
``ids`` (the default) asks for the labels only, as above; ``reason`` asks for a
few sentences of reasoning, then a line ``Final ranking:`` and the labels below
it (the parser reads such answers with ``mode="reason"``: the last complete
list, see :mod:`flexbench.llm.parsing`), and its system line allows the
reasoning. :data:`PROMPT_VERSION` names the prompt text; runs record it with the
mode so results of different prompts are never mixed.

Need signals (:attr:`~flexbench.types.NeedSpec.shows`, docs/PROTOCOL.md): Explore New
Topics prompts add ``topics: ...`` to every history and candidate line, Trend Promotion
prompts add ``interactions in the past 24 h: N`` to every candidate line (the count the
trend label uses, stored at prepare time).

Candidates are shown in their display order, decided in one place
(:mod:`flexbench.display`): the one the harness chose (``--permutations``), else
display order 0, candidate ``c`` of instance ``x`` sorted by
``sha256(seed, x.instance_id, c)``, which is stable across Python and NumPy
versions and independent of the retriever order. Labels come from
:mod:`flexbench.llm.labels` (a function of the candidate set only).

Everything taken from the data (item texts, the query) passes through
:func:`~flexbench.llm.labels.neutralize`, has its line breaks folded into
``" | "`` and is cut to ``max_item_chars``: a candidate cannot open a new
candidate line, forge a label, or inject a bracketed ID into the prompt. Nor can
it produce a control token (``<|im_end|>``, ``</s>`` ...): the user message is
passed through :func:`~flexbench.llm.control_tokens.break_control_tokens` with the
special tokens of the tokenizer ``build_prompt`` receives (and generic shapes
always, which :func:`clean_text` breaks per item as well).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from flexbench.display import shown_ids
from flexbench.llm.control_tokens import break_control_tokens, control_tokens
from flexbench.llm.labels import FINAL_MARKER, PromptMode, format_label, label_map, neutralize, prompt_mode_of
from flexbench.types import Candidate, Instance, NeedSpec, Signal

# 1: labels only (issue 5). 2: prompt modes (the ``ids`` text unchanged, ``reason`` added).
# 3: need signals (topics in novelty prompts, 24 h counts in trend prompts; issue 14).
PROMPT_VERSION = 3
DEFAULT_SYSTEM = ("You are a recommender system. You rank a closed set of candidate items "
                  "for a user's stated need and answer only with candidate IDs.")
REASON_SYSTEM = ("You are a recommender system. You rank a closed set of candidate items "
                 "for a user's stated need: you reason briefly, then give the ranked candidate IDs.")
_NEWLINES = re.compile(r"\s*[\r\n\u2028\u2029\x0b\x0c\x85]+\s*")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Prompt:
    """A built prompt: chat ``messages``, the rendered ``text`` and the shown candidate order.

    ``text`` is the chat template applied with a generation prompt when the
    tokenizer has a template, else a plain rendering ending in ``"Answer:\\n"``.
    ``labels[i]`` is the label shown for ``shown_ids[i]``; ``mode`` is the answer
    format asked for (parse the answer with the same mode).
    """

    messages: tuple[dict[str, str], ...]
    text: str
    shown_ids: tuple[str, ...]
    labels: tuple[str, ...] = field(default=())
    mode: PromptMode = PromptMode.IDS


def shown_order(instance: Instance, seed: int) -> tuple[str, ...]:
    """Candidate IDs in the order shown to the model: the display order the harness chose
    (:func:`flexbench.display.shown_ids`), else the seeded default order."""
    return shown_ids(instance, seed)


def clean_text(text: str, max_chars: int, forbidden: Collection[str] = ()) -> str:
    """Data text as one safe line: neutralised brackets, no control token (generic or ``forbidden``),
    folded line breaks, at most ``max_chars``."""
    line = _SPACES.sub(" ", _NEWLINES.sub(" | ", break_control_tokens(neutralize(text), forbidden))).strip()
    return line if len(line) <= max_chars else line[: max_chars - 1].rstrip() + "…"


def _topics_note(topics: Sequence[str], max_chars: int) -> str:
    """``topics: Action, Drama`` (numeric tags as ``topic 27``), ``topics: none`` without topics."""
    names = [f"topic {t}" if t.isdigit() else t for t in topics]
    return f"topics: {clean_text(', '.join(names), max_chars)}" if names else "topics: none"


def _candidate_line(candidate: Candidate, label: str, need: NeedSpec, max_chars: int) -> str:
    """``[label] <text>`` plus the signals the need shows (:attr:`~flexbench.types.NeedSpec.shows`)."""
    notes = []
    if Signal.TOPICS in need.shows:
        notes.append(_topics_note(candidate.topics, max_chars))
    if Signal.RECENT_COUNT in need.shows and candidate.recent_count is not None:
        notes.append(f"interactions in the past 24 h: {candidate.recent_count}")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"{format_label(label)} {clean_text(candidate.text, max_chars)}{tail}"


def _candidates_head(instance: Instance, need: NeedSpec) -> str:
    head = "Candidates (each has an ID in square brackets"
    if Signal.RECENT_COUNT in need.shows and any(c.recent_count is not None for c in instance.candidates):
        head += "; \"interactions in the past 24 h\" counts all users' interactions with the item in the day before now"
    return head + "):"


def _context_block(instance: Instance, max_chars: int, max_history: int | None,
                   need: NeedSpec | None = None) -> str:
    if instance.query is not None and not instance.history:
        return f"Shopping query: \"{clean_text(instance.query, max_chars)}\""
    history = instance.history if max_history is None else instance.history[-max_history:]
    topics = need is not None and Signal.TOPICS in need.shows
    lines = [f"- {clean_text(h.text, max_chars)} (engagement {h.engagement:.2f}"
             + (f"; {_topics_note(h.topics, max_chars)})" if topics else ")") for h in history]
    head = "The user's recent history, oldest first, with engagement (higher = liked more):"
    block = "\n".join([head, *lines])
    if instance.query is not None:
        block += f"\n\nQuery: \"{clean_text(instance.query, max_chars)}\""
    return block


def _answer_format(labels: Sequence[str], mode: PromptMode = PromptMode.IDS) -> str:
    k = len(labels)
    example = "\n".join(format_label(label) for label in labels[:2])
    if mode is PromptMode.REASON:
        return (f"Rank all {k} candidates for this need, best first. First explain your reasoning in "
                f"a few short sentences. Then write the line \"{FINAL_MARKER}\" and below it the "
                f"candidate IDs in square brackets, one per line, each of the {k} IDs exactly once, "
                f"and nothing after the list. For example, the end of an answer looks like this:\n"
                f"{FINAL_MARKER}\n{example}\n...")
    return (f"Rank all {k} candidates for this need, best first. Answer with the candidate IDs "
            f"in square brackets, one per line, each of the {k} IDs exactly once, and nothing "
            f"else. For example, an answer starts like this:\n{example}\n...")


def build_messages(instance: Instance, need: NeedSpec, *, seed: int, max_item_chars: int = 300,
                   max_history: int | None = None, system: str | None = DEFAULT_SYSTEM,
                   mode: PromptMode | str = PromptMode.IDS, forbidden: Collection[str] = ()
                   ) -> tuple[tuple[dict[str, str], ...], tuple[str, ...], tuple[str, ...]]:
    """``(messages, shown_ids, labels)`` of the prompt; see the module docstring for the layout.

    ``system=None`` sends no system message; the default :data:`DEFAULT_SYSTEM`
    becomes :data:`REASON_SYSTEM` in reason mode. ``forbidden``: control-token
    strings the user message must not contain (besides the generic ones).
    """
    mode = prompt_mode_of(mode)
    if mode is PromptMode.REASON and system == DEFAULT_SYSTEM:
        system = REASON_SYSTEM
    if max_item_chars < 20:
        raise ValueError(f"max_item_chars={max_item_chars} is too short to show an item; use >= 20")
    shown = shown_order(instance, seed)
    label_of = label_map(instance.candidate_ids)
    labels = tuple(label_of[item] for item in shown)
    by_id = {c.item_id: c for c in instance.candidates}
    candidates = "\n".join(_candidate_line(by_id[item], label, need, max_item_chars)
                           for item, label in zip(shown, labels, strict=True))
    user = "\n\n".join([
        f"Task: {need.title}. {need.instruction}",
        _context_block(instance, max_item_chars, max_history, need),
        f"{_candidates_head(instance, need)}\n{candidates}",
        _answer_format(labels, mode),
    ])
    user = break_control_tokens(user, forbidden)
    messages: list[dict[str, str]] = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": user})
    return tuple(messages), shown, labels


def render(messages: Sequence[dict[str, str]], tokenizer: Any = None) -> str:
    """Chat-template text with a generation prompt, or a plain rendering without a template."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:\n"


def build_prompt(instance: Instance, need: NeedSpec, *, seed: int, tokenizer: Any = None,
                 max_item_chars: int = 300, max_history: int | None = None,
                 system: str | None = DEFAULT_SYSTEM, mode: PromptMode | str = PromptMode.IDS) -> Prompt:
    """Build the prompt of ``instance`` for ``need`` (deterministic for ``seed``) in prompt ``mode``."""
    mode = prompt_mode_of(mode)
    messages, shown, labels = build_messages(instance, need, seed=seed, max_item_chars=max_item_chars,
                                             max_history=max_history, system=system, mode=mode,
                                             forbidden=control_tokens(tokenizer))
    return Prompt(messages=messages, text=render(messages, tokenizer), shown_ids=shown, labels=labels,
                  mode=mode)
