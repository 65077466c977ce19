"""The candidate label scheme: short opaque IDs that item text cannot forge.

Prompts do not show raw item IDs (ASINs, six-digit video IDs) to the model. Each
candidate of an instance gets a label ``1 .. K`` written in square brackets,
``[7]``: one to two digit tokens plus brackets, so a full answer of 30 labels is
about 140 tokens with the SmolLM2 tokenizer. The parser maps labels back to item
IDs (:func:`label_map`).

Scheme (documented contract, shared by prompts, parser and constrained decoding):

* **Assignment depends only on the candidate set**, never on the order in which
  candidates are passed: candidate ``c`` of the set ``C`` gets the rank of
  ``sha256(digest(C) + c)`` among its set, plus one, where ``digest(C)`` is the
  SHA-256 of the sorted IDs. Callers may therefore pass ``candidate_ids`` in
  retriever order or in shown order and get the same labels, and the label is
  unrelated both to the retriever order and to the (seeded) shown order.
* **Item text cannot contain a label.** :func:`neutralize` rewrites every
  character that normalises (NFKC, plus the bracket look-alikes in
  :data:`BRACKET_LOOKALIKES`) to ``[`` or ``]`` into ``(`` or ``)``, and removes
  invisible format characters, so no substring of shown item text, history or
  query can be read as ``[<digits>]`` by the parser, whatever the item says.
* Invalid labels (outside ``1 .. K``) are emitted as ``"invalid-label:<n>"`` so
  they can never collide with a real item ID in ``Ranking.item_ids``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from enum import StrEnum

INVALID_PREFIX = "invalid-label:"
FINAL_MARKER = "Final ranking:"
ENTRY_TEMPLATE = "[{label}]\n"
BRACKET_LOOKALIKES = {
    "【": "[", "】": "]", "〔": "[", "〕": "]", "〖": "[", "〗": "]", "〘": "[", "〙": "]",
    "〚": "[", "〛": "]", "⟦": "[", "⟧": "]", "⁅": "[", "⁆": "]", "❲": "[", "❳": "]",
}


class PromptMode(StrEnum):
    """What the answer may hold besides the list (the prompt asks for it; the parser reads it).

    ``ids``: only the bracketed labels, one per line. ``reason``: a short rationale,
    then a line :data:`FINAL_MARKER` and the labels below it.
    """

    IDS = "ids"
    REASON = "reason"


def prompt_mode_of(value: str) -> PromptMode:
    """``value`` as a :class:`PromptMode`; ``ValueError`` naming the choices otherwise."""
    try:
        return PromptMode(value)
    except ValueError:
        raise ValueError(f"prompt_mode={value!r}; choose one of {', '.join(PromptMode)}") from None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def label_map(candidate_ids: Sequence[str]) -> dict[str, str]:
    """Map each candidate item ID to its label (``"1"`` .. ``"K"``); order-independent."""
    ids = sorted(candidate_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("candidate IDs must be unique")
    set_digest = _sha("\x1f".join(ids))
    ordered = sorted(ids, key=lambda item: (_sha(set_digest + "\x1f" + item), item))
    return {item: str(rank + 1) for rank, item in enumerate(ordered)}


def item_by_label(candidate_ids: Sequence[str]) -> dict[int, str]:
    """Inverse of :func:`label_map`, keyed by the label's integer value."""
    return {int(label): item for item, label in label_map(candidate_ids).items()}


def format_label(label: str) -> str:
    """How a label is written in prompts and answers: ``[7]``."""
    return f"[{label}]"


def format_entry(label: str) -> str:
    """One answer line: the bracketed label and a newline (the constrained-decoding unit)."""
    return ENTRY_TEMPLATE.format(label=label)


def invalid_id(value: str) -> str:
    """The emitted ID of a label that names no candidate."""
    return f"{INVALID_PREFIX}{value}"


def normalize_char(ch: str) -> str:
    """NFKC form of one character with bracket look-alikes folded and format characters removed."""
    if ch in BRACKET_LOOKALIKES:
        return BRACKET_LOOKALIKES[ch]
    if unicodedata.category(ch) == "Cf":  # zero-width spaces, joiners, bidi marks
        return ""
    return unicodedata.normalize("NFKC", ch)


def neutralize(text: str) -> str:
    """Make data text safe to show: no character of it can be read as a label bracket."""
    out = []
    for ch in text:
        norm = normalize_char(ch)
        if "[" in norm or "]" in norm:
            out.append(norm.replace("[", "(").replace("]", ")"))
        elif norm == "" and ch != "":
            continue
        else:
            out.append(ch)
    return "".join(out)
