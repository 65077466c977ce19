"""Pack (prompt, completion) token sequences and score the completion tokens with a causal LM.

Layout of a packed batch: prompts left-padded to ``P`` tokens, completions
right-padded to ``T`` tokens, so every completion starts at column ``P``::

    [pad pad p p p | c c c pad]
    [p p p p p p p | c c c c  ]

Position IDs are ``cumsum(attention_mask) - 1`` so left padding does not shift
positions. Only the last ``T + 1`` logits are computed (``logits_to_keep``):
the logit at column ``P - 1 + t`` predicts completion token ``t``.

Constrained rollouts carry their *support*: the token IDs the sampler allowed
at each step (:func:`flexbench.llm.constrained.support_of`), packed as
``support [B, T, A]`` with ``support_mask``; :func:`score_completions` then
scores every token under the softmax over its support, the distribution it was
drawn from (:mod:`flexbench.train.optim.loss`). Logits are divided by the
sampling temperature before either softmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from flexbench.train.optim.loss import token_entropy, token_logprobs


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token IDs of a prompt as the generation backends encode it.

    Chat-templated text already holds its special tokens, so none are added
    unless the tokenizer has no chat template (as
    :class:`flexbench.llm.backends.TransformersBackend` does).
    """
    add = not getattr(tokenizer, "chat_template", None)
    return list(tokenizer(text, add_special_tokens=add)["input_ids"])


@dataclass(frozen=True)
class PackedBatch:
    """Token tensors of ``B`` sequences (see the module docstring)."""

    input_ids: torch.Tensor          # [B, P + T]
    attention_mask: torch.Tensor     # [B, P + T]
    position_ids: torch.Tensor       # [B, P + T]
    completion: torch.Tensor         # [B, T] completion token IDs (pad where masked)
    completion_mask: torch.Tensor    # [B, T] 1 for real completion tokens
    support: torch.Tensor | None = None       # [B, T, A] allowed token IDs of constrained rollouts
    support_mask: torch.Tensor | None = None  # [B, T, A] True for the real entries of ``support``

    @property
    def prompt_width(self) -> int:
        """``P``: the column where completions start."""
        return self.input_ids.shape[1] - self.completion.shape[1]

    def to(self, device: torch.device | str) -> PackedBatch:
        """The same batch on ``device``."""
        return PackedBatch(*(None if t is None else t.to(device)
                             for t in (self.input_ids, self.attention_mask, self.position_ids, self.completion,
                                       self.completion_mask, self.support, self.support_mask)))

    def forward_logits(self, model: torch.nn.Module, *, hidden: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``[B, T, V]`` predicting each completion token (:func:`completion_logits`)."""
        return completion_logits(model, self, hidden=hidden)


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
         supports: Sequence[Sequence[Sequence[int]] | None] | None = None) -> PackedBatch:
    """Pack token lists into a :class:`PackedBatch` (prompts left-, completions right-padded).

    ``supports[i]`` (optional) holds, per completion token of sequence ``i``, the
    token IDs its sampler allowed; all or none of the sequences must have one.
    """
    if len(prompts) != len(completions) or not prompts:
        raise ValueError("pack needs one completion per prompt and at least one sequence")
    width_p = max(len(p) for p in prompts)
    width_t = max(1, max(len(c) for c in completions))
    b = len(prompts)
    ids = torch.full((b, width_p + width_t), pad_id, dtype=torch.long)
    attn = torch.zeros((b, width_p + width_t), dtype=torch.long)
    comp = torch.full((b, width_t), pad_id, dtype=torch.long)
    cmask = torch.zeros((b, width_t), dtype=torch.float32)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, width_p - len(p):width_p] = torch.as_tensor(list(p), dtype=torch.long)
        attn[i, width_p - len(p):width_p] = 1
        if c:
            ids[i, width_p:width_p + len(c)] = torch.as_tensor(list(c), dtype=torch.long)
            attn[i, width_p:width_p + len(c)] = 1
            comp[i, :len(c)] = torch.as_tensor(list(c), dtype=torch.long)
            cmask[i, :len(c)] = 1.0
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    support, support_mask = pack_supports(supports, completions, comp) if supports is not None else (None, None)
    return PackedBatch(ids, attn, pos, comp, cmask, support, support_mask)


def pack_supports(supports: Sequence[Sequence[Sequence[int]] | None], completions: Sequence[Sequence[int]],
                  completion: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``support [B, T, A]`` and ``support_mask`` of per-token allowed IDs (``None`` when no row has one).

    Padding positions get the pad token as their only support (forced: log-prob 0).
    """
    present = [s is not None for s in supports]
    if not any(present):
        return None, None
    if not all(present):
        raise ValueError("either every rollout of a batch is constrained or none is")
    width = max(1, max(len(a) for s in supports for a in s))  # type: ignore[union-attr]
    b, t = completion.shape
    index = completion.unsqueeze(-1).repeat(1, 1, width)
    mask = torch.zeros((b, t, width), dtype=torch.bool)
    mask[:, :, 0] = True
    for i, (steps, comp) in enumerate(zip(supports, completions, strict=True)):
        if len(steps) != len(comp):  # type: ignore[arg-type]
            raise ValueError(f"sequence {i}: {len(steps)} support steps for {len(comp)} tokens")  # type: ignore[arg-type]
        for k, allowed in enumerate(steps):  # type: ignore[union-attr]
            index[i, k, :len(allowed)] = torch.as_tensor(list(allowed), dtype=torch.long)
            mask[i, k, :] = False
            mask[i, k, :len(allowed)] = True
    return index, mask


@dataclass(frozen=True)
class TokenScores:
    """Per completion token: log-probability, entropy (optional) and last hidden state (optional)."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


def completion_logits(model: torch.nn.Module, batch: PackedBatch, *, hidden: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits ``[B, T, V]`` predicting each completion token, and the matching hidden states."""
    t = batch.completion.shape[1]
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=batch.position_ids, logits_to_keep=t + 1,
                output_hidden_states=hidden, use_cache=False)
    logits = out.logits[:, :t, :]
    states = None
    if hidden:
        p = batch.prompt_width
        states = out.hidden_states[-1][:, p - 1:p - 1 + t, :]
    return logits, states


def score_completions(model: torch.nn.Module, batch: Any, *, entropy: bool = False,
                      hidden: bool = False, temperature: float = 1.0) -> TokenScores:
    """Log-probabilities (and optionally entropies, hidden states) of the completion tokens.

    Scored under the sampling distribution: logits divided by ``temperature``
    and, for a batch with a support (constrained rollouts), softmax over the
    allowed tokens of each step. ``batch`` is a :class:`PackedBatch` or a
    prefix-shared :class:`~flexbench.train.optim.shared.SharedBatch`; both give
    ``[B, T]`` per-rollout tensors.
    """
    logits, states = batch.forward_logits(model, hidden=hidden)
    if temperature != 1.0:
        logits = logits.float() / temperature
    logp = token_logprobs(logits, batch.completion, batch.support, batch.support_mask)
    ent = token_entropy(logits, batch.support, batch.support_mask) if entropy else None
    return TokenScores(logp, ent, states)
