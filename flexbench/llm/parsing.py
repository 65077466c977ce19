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

Each entry is then *valid* (first occurrence of a candidate's label), *duplicate*
(a candidate already listed) or *invalid* (a number that labels no candidate,
emitted as ``invalid-label:<n>`` so it can never equal a real item ID).
:func:`token_entry_index` maps token offsets to these spans for per-item credit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flexbench.llm.labels import invalid_id, item_by_label, normalize_char

_LABEL = re.compile(r"\[\s*#?\s*(\d{1,6})\s*\]")
_ELEM = r'"?#?\d{1,6}"?'
_JSON_ARRAY = re.compile(rf"\[\s*(?:{_ELEM}\s*,\s*)+(?:{_ELEM}\s*\])?")
_JSON_ELEM = re.compile(r'"?#?(\d{1,6})"?(?=\s*[,\]])')
_MARKER_WORDS = r"(?:final\s+)?(?:answer|ranking|ranked\s+list)"
_MARKER = re.compile(rf"\b{_MARKER_WORDS}\b(?:\s*\*\*)?\s*[:：]|^[#*_\s]*{_MARKER_WORDS}[#*_\s]*$",
                     re.IGNORECASE | re.MULTILINE)
_LEAD = re.compile(rf"^[\s>]*(?:[#*_\s]*{_MARKER_WORDS}[#*_\s]*[:：]?)?\s*"
                   r"(?:[-*•+]|\d{1,3}\s*[.):]|#\d{1,3}[.:)]?|(?:rank|no\.?)\s*\d{1,3}\s*[.:)]?)?"
                   r"[\s\"'`*_({]*$", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")

VALID, INVALID, DUPLICATE = "valid", "invalid", "duplicate"


@dataclass(frozen=True)
class ParsedEntry:
    """One listed entry: the original substring, its item (``None`` if invalid), span and status."""

    raw: str
    item_id: str | None
    span: tuple[int, int]
    status: str  # "valid" | "invalid" | "duplicate"


@dataclass(frozen=True)
class ParsedRanking:
    """The entries of the answer in output order; ``parsed`` is False when no list was found."""

    entries: tuple[ParsedEntry, ...]
    parsed: bool

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
    def n_invalid(self) -> int:
        return sum(e.status == INVALID for e in self.entries)

    @property
    def n_duplicate(self) -> int:
        return sum(e.status == DUPLICATE for e in self.entries)


@dataclass(frozen=True)
class _Hit:
    value: int
    start: int  # normalised coordinates
    end: int
    group: int  # JSON array index, or -1 for a bracketed label


def _label_value(raw: str) -> str:
    digits = "".join(ch for ch in "".join(normalize_char(c) for c in raw) if ch.isdigit())
    return str(int(digits)) if digits else raw


def _normalise(text: str) -> tuple[str, list[int]]:
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        for out in normalize_char(ch):
            chars.append(out)
            origin.append(i)
    return "".join(chars), origin


def _find_hits(norm: str) -> list[_Hit]:
    hits: list[_Hit] = []
    taken: list[tuple[int, int]] = []
    for g, arr in enumerate(_JSON_ARRAY.finditer(norm)):
        taken.append(arr.span())
        body_start = arr.start()
        for m in _JSON_ELEM.finditer(norm, body_start, arr.end() + 1):
            if m.start() < arr.end():
                hits.append(_Hit(int(m.group(1)), m.start(), m.end(), g))
    for m in _LABEL.finditer(norm):
        if not any(a <= m.start() < b for a, b in taken):
            hits.append(_Hit(int(m.group(1)), m.start(), m.end(), -1))
    return sorted(hits, key=lambda h: h.start)


def _run_from(hits: list[_Hit], i: int, norm: str, line_end: int) -> list[_Hit]:
    run = [hits[i]]
    for nxt in hits[i + 1:]:
        if nxt.start >= line_end or _LETTER.search(norm, run[-1].end, nxt.start):
            break
        run.append(nxt)
    return run


def _line_blocks(norm: str, line: tuple[int, int], loose: list[_Hit],
                 arrays: list[list[_Hit]]) -> tuple[list[_Hit] | None, list[list[_Hit]]]:
    """``(list-line entries or None, blocks standing alone)`` of one line."""
    start, end = line
    labels = [i for i, h in enumerate(loose) if start <= h.start < end]
    own = [a for a in arrays if start <= a[0].start < end]
    if labels and (not own or loose[labels[0]].start < own[0][0].start) \
            and _LEAD.match(norm[start:loose[labels[0]].start]):
        return _run_from(loose, labels[0], norm, end), own
    runs = [_run_from(loose, i, norm, end) for i in labels]
    best = max(runs, key=len, default=[])
    return None, ([best] if len(best) >= 2 else []) + own


def _blocks(norm: str, hits: list[_Hit]) -> list[list[_Hit]]:
    loose = [h for h in hits if h.group < 0]
    by_group: dict[int, list[_Hit]] = {}
    for h in hits:
        if h.group >= 0:
            by_group.setdefault(h.group, []).append(h)
    arrays = list(by_group.values())
    blocks: list[list[_Hit]] = []
    current: list[_Hit] = []
    pos = 0
    for line in norm.splitlines(keepends=True):
        span, pos = (pos, pos + len(line)), pos + len(line)
        if not any(span[0] <= h.start < span[1] for h in hits):
            continue  # label-free lines (explanations, blank lines) do not end a block
        entries, alone = _line_blocks(norm, span, loose, arrays)
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


def _select(norm: str, hits: list[_Hit]) -> list[_Hit]:
    blocks = _blocks(norm, hits)
    markers = [m.end() for m in _MARKER.finditer(norm)]
    for pos in reversed(markers):
        after = [b for b in blocks if b[0].start >= pos]
        if after:
            return after[0]
    if blocks:
        return max(reversed(blocks), key=len)
    cut = next((pos for pos in reversed(markers) if any(h.start >= pos for h in hits)), 0)
    return [h for h in hits if h.start >= cut]


def parse_ranking(text: str, candidate_ids: Sequence[str]) -> ParsedRanking:
    """Parse the ranked candidates out of ``text`` (see the module docstring).

    ``candidate_ids`` may be given in any order: labels depend on the set only.
    """
    norm, origin = _normalise(text)
    hits = _find_hits(norm)
    if not hits:
        return ParsedRanking(entries=(), parsed=False)
    by_label = item_by_label(candidate_ids)
    seen: set[str] = set()
    entries = []
    for h in _select(norm, hits):
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
