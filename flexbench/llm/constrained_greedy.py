"""Greedy permutation decoding that runs the model only where the constraint leaves a choice.

The output equals transformers ``generate(do_sample=False)`` with
:class:`~flexbench.llm.constrained.PermutationLogitsProcessor` (tested): at
every step the token is the argmax of the logits over the allowed tokens after
the tokens so far. Two things make it cheaper on a CPU:

* **forced steps cost nothing.** Most tokens of a permutation are forced (the
  bracket after a label's digits, the newline, the last remaining label, EOS):
  with one allowed token there is nothing to score, so the token is appended
  without a forward pass. The appended tokens of a row are fed to the model in
  one chunk when the row next has a choice (``[2]\\n[`` after choosing ``2``).
  The number of forward passes drops from the answer's length in tokens to the
  number of choice points (about one per label with SmolLM2's tokenizer).
* **one cache per batch, no per-step machinery.** The prompt is prefilled once
  per batch (left padding); each later forward feeds only the new tokens of
  every row, right-padded to the longest chunk, with the padding masked out of
  the attention mask (holes in the 2D mask are allowed) and position IDs taken
  from the mask's cumulative sum, as ``generate`` computes them.

Logits of a chunk are computed in one matrix product instead of one per token,
so they can differ from ``generate``'s in the last float bits; a greedy choice
changes only where two allowed tokens tie to that precision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from flexbench.llm.constrained import LabelTrie, TrieCursor
from flexbench.llm.labels import label_map


def greedy_permutations(model: Any, tokenizer: Any, prompts: Sequence[str],
                        candidate_ids: Sequence[Sequence[str]], eos_token_ids: Iterable[int], *,
                        add_special_tokens: bool = False, batch_size: int = 8) -> list[list[int]]:
    """Completion token IDs (EOS included) of each prompt, greedy under the permutation constraint."""
    if len(prompts) != len(candidate_ids):
        raise ValueError(f"{len(candidate_ids)} candidate lists for {len(prompts)} prompts")
    eos = frozenset(int(t) for t in eos_token_ids)
    if not eos:
        raise ValueError("constrained decoding needs at least one end-of-sequence token ID")
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        out += _decode_batch(model, tokenizer, prompts[start:start + batch_size],
                             candidate_ids[start:start + batch_size], eos, add_special_tokens)
    return out


def _take_forced(cursor: TrieCursor, tokens: list[int], pending: list[int]) -> None:
    """Append every forced token that follows (EOS included; nothing after it)."""
    while not cursor.finished:
        allowed = cursor.allowed()
        if len(allowed) != 1:
            return
        tok = allowed[0]
        tokens.append(tok)
        cursor.advance(tok)
        if tok in cursor.eos_ids:
            return
        pending.append(tok)


def _decode_batch(model: Any, tokenizer: Any, prompts: Sequence[str], candidate_ids: Sequence[Sequence[str]],
                  eos: frozenset[int], add_special_tokens: bool) -> list[list[int]]:
    import torch

    device = next(model.parameters()).device
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    cursors = [LabelTrie(tokenizer, label_map(c).values()).cursor(eos) for c in candidate_ids]
    tokens: list[list[int]] = [[] for _ in prompts]
    pending: list[list[int]] = [[] for _ in prompts]
    for cursor, row, todo in zip(cursors, tokens, pending, strict=True):
        _take_forced(cursor, row, todo)  # an answer may open with forced tokens
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    cache_kw = _cache_keyword(model)
    with torch.inference_mode():
        feed = [list(map(int, r[m.bool()])) + p for r, m, p in zip(ids, mask, pending, strict=True)]
        chunk, mask, last = _chunk(feed, None, pad, device, left=True)
        past = None
        while True:
            position = (mask.cumsum(-1) - 1).clamp(min=0)[:, -chunk.shape[1]:]
            result = model(input_ids=chunk, attention_mask=mask, position_ids=position, use_cache=True,
                           **{cache_kw: past})
            past = getattr(result, "cache", None) or result.past_key_values
            logits = result.logits[torch.arange(len(prompts), device=device), last]
            feed = [[] for _ in prompts]
            for b, cursor in enumerate(cursors):
                if cursor.finished:
                    continue
                allowed = cursor.allowed()
                row_logits = logits[b, torch.tensor(allowed, device=device)]
                choice = allowed[int(torch.argmax(row_logits))]
                tokens[b].append(choice)
                cursor.advance(choice)
                if choice not in eos:
                    feed[b].append(choice)
                    _take_forced(cursor, tokens[b], feed[b])
            if all(c.finished for c in cursors):
                return tokens
            chunk, mask, last = _chunk(feed, mask, pad, device, left=False)


def _cache_keyword(model: Any) -> str:
    """``cache`` where the model's forward takes it (transformers >= 5.2x), else ``past_key_values``."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _chunk(feed: Sequence[Sequence[int]], mask: Any, pad: int, device: Any, *, left: bool) -> tuple[Any, Any, Any]:
    """The next input chunk ``[B, m]``, the extended attention mask and each row's last real column.

    The prefill chunk is left-padded (prompts end at the same column); later
    chunks are right-padded and their padding is masked out. A row with nothing
    to feed (finished, or waiting) gets one masked pad column so shapes line up.
    """
    import torch

    width = max(1, max(len(f) for f in feed))
    ids = torch.full((len(feed), width), pad, dtype=torch.long)
    new = torch.zeros((len(feed), width), dtype=torch.long)
    last = torch.zeros(len(feed), dtype=torch.long)
    for b, f in enumerate(feed):
        if not f:
            continue
        cols = slice(width - len(f), width) if left else slice(0, len(f))
        ids[b, cols] = torch.tensor(list(f))
        new[b, cols] = 1
        last[b] = width - 1 if left else len(f) - 1
    ids, new, last = ids.to(device), new.to(device), last.to(device)
    return ids, new if mask is None else torch.cat([mask, new], dim=1), last
