"""Constrained decoding: the model can only emit a permutation of its candidates' labels.

Every answer entry has one canonical token sequence, the tokenization of
``"[<label>]\\n"`` (:func:`~flexbench.llm.labels.format_entry`). The entries of
one prompt form a token trie. At each step the processor walks the tokens
generated so far through the trie, collecting the labels already completed, and
allows only

* the next tokens of entries whose label is not yet listed (at an entry
  boundary: the first tokens of all remaining entries), and
* the end-of-sequence tokens once all ``K`` labels are listed (never before).

The output is therefore always ``K`` distinct valid labels, one per line, then
EOS: a valid permutation, provided ``max_new_tokens`` leaves room for it
(:meth:`PermutationLogitsProcessor.max_length`). The walk is recomputed from
the generated tokens at every step (O(T) per row), so the processor holds no
state between calls and works unchanged with sampling, ``num_return_sequences``
and finished rows. Masking happens before temperature and top-p (transformers
merges custom processors ahead of its warpers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flexbench.llm.labels import format_entry, label_map


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)  # labels in this subtree
    label: str | None = None  # set on the node that completes an entry


class LabelTrie:
    """Token trie of the canonical answer entries of one candidate set."""

    def __init__(self, tokenizer: Any, labels: Iterable[str]) -> None:
        self.root = _Node()
        self.labels = tuple(labels)
        self.lengths: dict[str, int] = {}
        for label in self.labels:
            ids = tokenizer.encode(format_entry(label), add_special_tokens=False)
            if not ids:
                raise ValueError(f"the tokenizer maps entry {format_entry(label)!r} to no tokens")
            self.lengths[label] = len(ids)
            node = self.root
            node.labels.add(label)
            for tok in ids:
                if node.label is not None:
                    raise ValueError(f"entry of label {node.label!r} is a token prefix of {label!r}")
                node = node.children.setdefault(int(tok), _Node())
                node.labels.add(label)
            if node.children or node.label is not None:
                raise ValueError(f"entry of label {label!r} is not prefix-free in the token trie")
            node.label = label

    def allowed(self, generated: Sequence[int], eos_ids: frozenset[int]) -> list[int]:
        """Token IDs allowed after ``generated`` (the tokens produced so far for one row)."""
        return self.walk(generated, eos_ids)[-1]

    def walk(self, tokens: Sequence[int], eos_ids: frozenset[int]) -> list[list[int]]:
        """The allowed token IDs before each of ``tokens`` and after the last: ``len(tokens) + 1`` lists.

        Entry ``t`` is what the sampler allowed when it drew ``tokens[t]`` (the
        support of its masked distribution); the scorer of constrained rollouts
        (:func:`support_of`) reads the same lists, so sampling and scoring share
        one definition of the mask (:class:`TrieCursor`).
        """
        cursor, out = self.cursor(eos_ids), []
        for tok in tokens:
            out.append(cursor.allowed())
            cursor.advance(tok)
        out.append(cursor.allowed())
        return out

    def cursor(self, eos_ids: frozenset[int]) -> TrieCursor:
        """A :class:`TrieCursor` at the start of an answer."""
        return TrieCursor(self, eos_ids)

    def max_length(self) -> int:
        """Tokens of a full permutation (without EOS)."""
        return sum(self.lengths.values())


class TrieCursor:
    """Where one answer stands in a :class:`LabelTrie`: the labels completed and the node inside the entry.

    ``allowed()`` lists the tokens the constraint allows next; ``advance(tok)``
    consumes one. After EOS, or a token off the trie, only EOS is allowed (a
    finished row, which ``generate`` pads).
    """

    def __init__(self, trie: LabelTrie, eos_ids: frozenset[int]) -> None:
        self.trie, self.eos_ids = trie, eos_ids
        self.node: _Node | None = trie.root
        self.used: set[str] = set()

    def allowed(self) -> list[int]:
        """Token IDs allowed next."""
        if self.node is None or len(self.used) == len(self.trie.labels):
            return sorted(self.eos_ids)
        return [tok for tok, child in self.node.children.items() if child.labels - self.used]

    def advance(self, tok: int) -> None:
        """Consume ``tok``."""
        if self.node is None:
            return
        child = None if tok in self.eos_ids else self.node.children.get(int(tok))
        self.node = child
        if child is not None and child.label is not None:
            self.used.add(child.label)
            self.node = self.trie.root

    @property
    def finished(self) -> bool:
        """Whether the answer has ended (EOS or off the trie)."""
        return self.node is None


def support_of(tokenizer: Any, candidate_ids: Sequence[str], completion: Sequence[int],
               eos_token_ids: Iterable[int]) -> list[tuple[int, ...]]:
    """The allowed token IDs at each step of ``completion`` under constrained decoding.

    The same trie and end-of-sequence set as :class:`PermutationLogitsProcessor`
    (one entry per completion token): the support of the masked distribution
    each token was sampled from. A step with a single allowed token (a bracket,
    a separator, the last remaining label, EOS) was forced.
    """
    eos = frozenset(int(t) for t in eos_token_ids)
    if not eos:
        raise ValueError("constrained decoding needs at least one end-of-sequence token ID")
    trie = LabelTrie(tokenizer, label_map(candidate_ids).values())
    steps = trie.walk(completion, eos)[:-1]
    for t, (tok, allowed) in enumerate(zip(completion, steps, strict=True)):
        if int(tok) not in allowed:
            raise ValueError(f"completion token {int(tok)} at step {t} is outside the constrained support "
                             f"{allowed[:8]}: the rollout was not sampled under this constraint")
    return [tuple(a) for a in steps]


class PermutationLogitsProcessor:
    """A transformers ``LogitsProcessor`` restricting each row to a permutation of its labels.

    ``candidate_ids[b]`` are the candidate item IDs of prompt ``b`` (any order);
    rows ``b * n .. b * n + n - 1`` of the scores belong to prompt ``b``
    (``num_return_sequences == n``). ``prompt_length`` is the padded prompt width.
    """

    def __init__(self, tokenizer: Any, candidate_ids: Sequence[Sequence[str]], prompt_length: int,
                 eos_token_ids: Iterable[int], n: int = 1) -> None:
        self.tries = [LabelTrie(tokenizer, label_map(ids).values()) for ids in candidate_ids]
        self.prompt_length = prompt_length
        self.eos_ids = frozenset(int(t) for t in eos_token_ids)
        if not self.eos_ids:
            raise ValueError("constrained decoding needs at least one end-of-sequence token ID")
        self.n = n

    def max_length(self) -> int:
        """New tokens needed by the longest permutation, EOS included."""
        return max(trie.max_length() for trie in self.tries) + 1

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_length:].tolist()
        mask = torch.full_like(scores, float("-inf"))
        for row, tokens in enumerate(generated):
            allowed = self.tries[row // self.n].allowed(tokens, self.eos_ids)
            idx = torch.tensor(allowed, dtype=torch.long, device=scores.device)
            mask[row, idx] = 0.0
        return scores + mask
