"""Reading a ranking out of generated text, with the character span of every entry.

The answer format asks for bracketed labels (``[7]``, see :mod:`flexbench.llm.labels`),
one per line. Models answer in many shapes, so :func:`parse_ranking` works in
four steps:

1. **Normalise** a view of the text character by character (NFKC, bracket
   look-alikes such as ``【7】`` folded, zero-width characters dropped) while
   keeping a map back to the original offsets, so every span refers to the text
   as generated. Digits are read with ``int`` and so may be any Unicode decimal
   digits (fullwidth ``３``, Arabic-Indic ...).
2. **Find hits**: bracketed labels ``[7]``, ``[ 7 ]``, ``[#7]``, and JSON arrays of
   label numbers (``[7, 12]``, ``["7", "12"]``, also truncated ones such as
   ``["7", "12", "3`` whose unfinished last element is dropped).
3. **Group hits into blocks.** Hits joined by letter-free gaps (commas,
   newlines, list numbering, ``>``) form a *run*. A line whose first hit comes
   right at its start (after bullets, numbering, quotes, markdown or an
   ``Answer:`` marker) is a *list line* and contributes the run that starts
   there; consecutive list lines form one block, even with label-free or
   indented explanation lines between them. Any other line with a label
   mentioned later in a sentence ends the current block; if it holds a run of
   >= 2 labels (``Ranking is [3] > [7] > [1]``) that run is a block of its own.
   A JSON array is a block.
4. **Pick the answer block**: the first block after the last ``Answer:`` /
   ``Final ranking:`` marker that has one; otherwise the block with the most
   entries, the later one on ties (reasoning that mentions IDs before the final
   list loses to the list). Text with hits but no block (a ranking in prose) uses
   every hit after the last marker. Text with no hit is a parse failure.

**Reasoning mode** (``mode=PromptMode.REASON``, the prompt that allows a short
rationale before ``Final ranking:``; :mod:`flexbench.llm.prompts`) takes the *last
complete list*, defined as follows. A *complete list* is a block of step 3 with
one more boundary: a marker ends the current block, so list-shaped reasoning
(``[3] is about pets`` on its own line) before the marker never merges with the
answer below it. The answer is the first complete list after the last marker
that has one (the list written under ``Final ranking:``); without one, the
complete list with the most entries, the later one on ties. A rationale whose
IDs form no block is never the answer: where the prose fallback of step 4 would
use hits that no marker precedes, reasoning mode reports a parse failure
instead (the rationale ran out of tokens before the list).

**Bounded work.** Inputs longer than :data:`MAX_PARSE_CHARS` characters are not
parsed: the result is a parse failure with ``failure == "too-long"`` (a real
answer of K <= 100 labels with a rationale is a few thousand characters). Below
the cap the worst-case time is linear in the input: every pattern is either a
literal-led match whose quantifiers are possessive or bounded (no position is
re-scanned by backtracking), or a per-line test on that line's text only, and
the block and selection steps sweep sorted hits with monotone pointers. The
property test in ``tests/llm/test_parser_bounds.py`` and
``benchmarks/bench_parser.py`` check the bound on adversarial inputs.

Each entry is then *valid* (first occurrence of a candidate's label), *duplicate*
(a candidate already listed) or *invalid* (a number that labels no candidate,
emitted as ``invalid-label:<n>`` so it can never equal a real item ID).
:func:`token_entry_index` maps token offsets to these spans for per-item credit.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

from flexbench.llm.labels import PromptMode, invalid_id, item_by_label, normalize_char, prompt_mode_of

MAX_PARSE_CHARS = 32_768
TOO_LONG, NO_LIST = "too-long", "no-list"

# Every quantifier that could meet the next token's characters is possessive (``*+``) or
# bounded, so a failed match at one position never re-scans the text after it.
_LABEL = re.compile(r"\[\s*+#?\s*+(\d{1,6}+)\s*+\]")
_ELEM = r'"?+#?+\d{1,6}+"?+'
_JSON_ARRAY = re.compile(rf"\[\s*+(?:{_ELEM}\s*+,\s*+)++(?:{_ELEM}\s*+\])?+")
_JSON_ELEM = re.compile(r'"?#?(\d{1,6})"?(?=\s*+[,\]])')
_MARKER_WORDS = r"(?:final\s++)?(?:answer|ranking|ranked\s++list)"
_PAD = r"(?:[#*_]|[^\S\n])"  # markdown and blanks within one line
_MARKER = re.compile(rf"\b{_MARKER_WORDS}\b(?:\s*+\*\*)?\s*+[:：]|^{_PAD}*+{_MARKER_WORDS}{_PAD}*+$",
                     re.IGNORECASE | re.MULTILINE)
# The start of a list line, matched on its text before the first label with blank runs
# folded to one space and trailing quotes/markdown/brackets (_LEAD_TAIL) stripped.
_BLANKS = re.compile(r"\s++")
_LEAD_TAIL = " \"'`*_({"
_LEAD = re.compile(r"[ >]*+(?:[#*_ ]*+(?:final )?(?:answer|ranking|ranked list)[#*_ ]*[:：]?)? ?"
                   r"(?:[-*•+]|\d{1,3} ?[.):]|#\d{1,3}[.:)]?|(?:rank|no\.?) ?\d{1,3} ?[.:)]?)?",
                   re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")

class EntryStatus(StrEnum):
    """What a listed entry is: the first occurrence of a candidate, a repeat of one, or no candidate at all."""

    VALID = "valid"
    INVALID = "invalid"
    DUPLICATE = "duplicate"


VALID, INVALID, DUPLICATE = EntryStatus.VALID, EntryStatus.INVALID, EntryStatus.DUPLICATE


@dataclass(frozen=True)
class ParsedEntry:
    """One listed entry: the original substring, its item (``None`` if invalid), span and status."""

    raw: str
    item_id: str | None
    span: tuple[int, int]
    status: EntryStatus


@dataclass(frozen=True)
class ParsedRanking:
    """The entries of the answer in output order; ``parsed`` is False when no list was found.

    ``failure`` says why a parse failed: ``"no-list"`` (no usable list) or
    ``"too-long"`` (input over :data:`MAX_PARSE_CHARS`); ``None`` when parsed.
    """

    entries: tuple[ParsedEntry, ...]
    parsed: bool
    failure: str | None = None

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Valid first occurrences, in order."""
        return tuple(e.item_id for e in self.entries if e.status == VALID and e.item_id is not None)

    @property
    def emitted_ids(self) -> tuple[str, ...]:
        """Every entry's ID as emitted (duplicates repeated, invalid as ``invalid-label:<n>``)."""
        return tuple(e.item_id if e.item_id is not None else invalid_id(_label_value(e.raw))
                     for e in self.entries)

    @property
    def spans(self) -> tuple[tuple[int, int], ...]:
        """Character span of every entry in the original text."""
        return tuple(e.span for e in self.entries)

    @property
    def answer_start(self) -> int | None:
        """Characters of output before the first entry (the reasoning length), ``None`` if unparsed."""
        return self.entries[0].span[0] if self.entries else None

    @property
    def n_invalid(self) -> int:
        return sum(e.status == INVALID for e in self.entries)

    @property
    def n_duplicate(self) -> int:
        return sum(e.status == DUPLICATE for e in self.entries)


class _Hit(NamedTuple):
    value: int
    start: int  # normalised coordinates
    end: int
    group: int  # JSON array index, or -1 for a bracketed label


def _label_value(raw: str) -> str:
    digits = "".join(ch for ch in "".join(normalize_char(c) for c in raw) if ch.isdigit())
    return str(int(digits)) if digits else raw


def _normalise(text: str) -> tuple[str, Sequence[int]]:
    if text.isascii():  # NFKC is the identity on ASCII, which holds no look-alike or format character
        return text, range(len(text))
    folded = {ch: normalize_char(ch) for ch in set(text)}
    parts = [folded[ch] for ch in text]
    origin = np.repeat(np.arange(len(text)), np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
    return "".join(parts), origin.tolist()


def _find_hits(norm: str) -> list[_Hit]:
    hits: list[_Hit] = []
    starts: list[int] = []
    ends: list[int] = []
    for g, arr in enumerate(_JSON_ARRAY.finditer(norm)):
        starts.append(arr.start())
        ends.append(arr.end())
        for m in _JSON_ELEM.finditer(norm, arr.start(), arr.end() + 1):
            if m.start() < arr.end():
                hits.append(_Hit(int(m.group(1)), m.start(), m.end(), g))
    for m in _LABEL.finditer(norm):
        j = bisect.bisect_right(starts, m.start()) - 1  # the array starting last at or before the label
        if j < 0 or m.start() >= ends[j]:
            hits.append(_Hit(int(m.group(1)), m.start(), m.end(), -1))
    return sorted(hits, key=lambda h: h.start)


def _is_list_lead(prefix: str) -> bool:
    """Whether a line's text before its first label is list decoration (bullet, number, marker)."""
    if not prefix:
        return True
    return _LEAD.fullmatch(_BLANKS.sub(" ", prefix).rstrip(_LEAD_TAIL)) is not None


def _chains(norm: str, labels: Sequence[_Hit]) -> list[list[_Hit]]:
    """Maximal runs of one line's labels whose gaps hold no letter, in order."""
    chains: list[list[_Hit]] = []
    for h in labels:
        if chains and not _LETTER.search(norm, chains[-1][-1].end, h.start):
            chains[-1].append(h)
        else:
            chains.append([h])
    return chains


def _line_blocks(norm: str, start: int, labels: Sequence[_Hit],
                 own: list[list[_Hit]]) -> tuple[list[_Hit] | None, list[list[_Hit]]]:
    """``(list-line entries or None, blocks standing alone)`` of the line starting at ``start``."""
    chains = _chains(norm, labels)
    if labels and (not own or labels[0].start < own[0][0].start) \
            and _is_list_lead(norm[start:labels[0].start]):
        return chains[0], own
    best = max(chains, key=len, default=[])  # the first longest run
    return None, ([best] if len(best) >= 2 else []) + own


def _hit_lines(norm: str, hits: list[_Hit]) -> list[tuple[int, str, list[_Hit]]]:
    """``(line start, line text, hits starting in it)`` of every line holding a hit, in order.

    Lines are ``str.splitlines`` lines; each hit is placed by binary search over
    the line starts, so label-free lines cost nothing beyond the split itself.
    """
    lines = norm.splitlines(keepends=True)
    starts = [0, *itertools.accumulate(map(len, lines))]
    grouped: list[tuple[int, str, list[_Hit]]] = []
    last = -1
    for h in hits:
        i = bisect.bisect_right(starts, h.start, lo=max(last, 0)) - 1
        if i != last:
            grouped.append((starts[i], lines[i], []))
            last = i
        grouped[-1][2].append(h)
    return grouped


def _blocks(norm: str, hits: list[_Hit], markers: Sequence[int], split_at_markers: bool) -> list[list[_Hit]]:
    first_of_array: dict[int, int] = {}
    arrays: dict[int, list[_Hit]] = {}
    for h in hits:
        if h.group >= 0:
            first_of_array.setdefault(h.group, h.start)
            arrays.setdefault(h.group, []).append(h)
    blocks: list[list[_Hit]] = []
    current: list[_Hit] = []
    for start, line, in_line in _hit_lines(norm, hits):
        if split_at_markers and current:
            i = bisect.bisect_right(markers, in_line[0].start) - 1
            if i >= 0 and markers[i] > current[-1].start:
                blocks.append(current)  # a marker between the block and this line ends the block
                current = []
        labels = [h for h in in_line if h.group < 0]
        own = [arrays[h.group] for h in in_line if h.group >= 0 and first_of_array[h.group] == h.start]
        entries, alone = _line_blocks(norm, start, labels, own)
        if entries is None and current and line[:1] in (" ", "\t"):
            continue  # an indented explanation under a list entry continues the list
        if entries is not None:
            current += entries
        if (entries is None or alone) and current:
            blocks.append(current)
            current = []
        blocks += alone
    if current:
        blocks.append(current)
    return sorted(blocks, key=lambda b: b[0].start)


def _select(norm: str, hits: list[_Hit], mode: PromptMode) -> list[_Hit]:
    markers = [m.end() for m in _MARKER.finditer(norm)]
    blocks = _blocks(norm, hits, markers, split_at_markers=mode is PromptMode.REASON)
    starts = [b[0].start for b in blocks]
    for pos in reversed(markers):
        i = bisect.bisect_left(starts, pos)
        if i < len(blocks):
            return blocks[i]
    if blocks:
        return max(reversed(blocks), key=len)
    cut = next((pos for pos in reversed(markers) if hits[-1].start >= pos), None)
    if cut is None and mode is PromptMode.REASON:
        return []  # IDs mentioned in a rationale, and no list: not an answer
    return [h for h in hits if h.start >= (cut or 0)]


def parse_ranking(text: str, candidate_ids: Sequence[str], *, mode: PromptMode | str = PromptMode.IDS
                  ) -> ParsedRanking:
    """Parse the ranked candidates out of ``text`` (see the module docstring).

    ``candidate_ids`` may be given in any order: labels depend on the set only.
    ``mode`` is the prompt mode the text answers (``"ids"`` or ``"reason"``).
    """
    mode = prompt_mode_of(mode)
    if len(text) > MAX_PARSE_CHARS:
        return ParsedRanking(entries=(), parsed=False, failure=TOO_LONG)
    norm, origin = _normalise(text)
    hits = _find_hits(norm)
    chosen = _select(norm, hits, mode) if hits else []
    if not chosen:
        return ParsedRanking(entries=(), parsed=False, failure=NO_LIST)
    by_label = item_by_label(candidate_ids)
    seen: set[str] = set()
    entries = []
    for h in chosen:
        span = (origin[h.start], origin[h.end - 1] + 1)
        item = by_label.get(h.value)
        status = INVALID if item is None else (DUPLICATE if item in seen else VALID)
        if item is not None:
            seen.add(item)
        entries.append(ParsedEntry(raw=text[span[0]:span[1]], item_id=item, span=span, status=status))
    return ParsedRanking(entries=tuple(entries), parsed=True)


def token_entry_index(token_offsets: Sequence[tuple[int, int]],
                      spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Entry index of each token (the entry whose span it overlaps most; earlier on ties), or -1.

    ``token_offsets`` are ``(start, end)`` character offsets of the tokens in the
    same text the spans refer to (a fast tokenizer's ``offset_mapping``, or
    :func:`decode_with_offsets` for generated tokens). Zero-width tokens get -1.
    """
    offsets = np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)
    if len(spans) == 0 or len(offsets) == 0:
        return np.full(len(offsets), -1, dtype=np.int64)
    sp = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    overlap = (np.minimum(offsets[:, None, 1], sp[None, :, 1])
               - np.maximum(offsets[:, None, 0], sp[None, :, 0]))
    best = overlap.argmax(axis=1)
    return np.where(overlap.max(axis=1) > 0, best, -1).astype(np.int64)


def decode_text(tokenizer: Any, token_ids: Sequence[int]) -> str:
    """The text of generated tokens as every backend reports it (special tokens skipped)."""
    return tokenizer.decode(list(token_ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)


def decode_with_offsets(tokenizer: Any, token_ids: Sequence[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decode generated tokens and return each token's character span in the decoded text.

    Special tokens are skipped (zero-width spans). A token that ends inside a
    multi-byte character gets an empty span; the token completing it covers it.
    """
    ids = list(token_ids)
    text = decode_text(tokenizer, ids)
    offsets: list[tuple[int, int]] = []
    end = 0
    for i in range(len(ids)):
        prefix = decode_text(tokenizer, ids[: i + 1])
        new_end = len(prefix) if text.startswith(prefix) and len(prefix) >= end else end
        offsets.append((end, new_end))
        end = new_end
    return text, offsets
