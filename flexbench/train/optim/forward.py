"""Pack (prompt, completion) token sequences and score the completion tokens with a causal LM.

Layout of a packed batch: prompts left-padded to ``P`` tokens, completions
right-padded to ``T`` tokens, so every completion starts at column ``P``::

    [pad pad p p p | c c c pad]
    [p p p p p p p | c c c c  ]

Position IDs are ``cumsum(attention_mask) - 1`` so left padding does not shift
positions. Only the last ``T + 1`` logits are computed (``logits_to_keep``):
the logit at column ``P - 1 + t`` predicts completion token ``t``.
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

    @property
    def prompt_width(self) -> int:
        """``P``: the column where completions start."""
        return self.input_ids.shape[1] - self.completion.shape[1]

    def to(self, device: torch.device | str) -> PackedBatch:
        """The same batch on ``device``."""
        return PackedBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.position_ids,
                                                     self.completion, self.completion_mask)))


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int) -> PackedBatch:
    """Pack token lists into a :class:`PackedBatch` (prompts left-, completions right-padded)."""
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
    return PackedBatch(ids, attn, pos, comp, cmask)


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


def score_completions(model: torch.nn.Module, batch: PackedBatch, *, entropy: bool = False,
                      hidden: bool = False) -> TokenScores:
    """Log-probabilities (and optionally entropies, hidden states) of the completion tokens."""
    logits, states = completion_logits(model, batch, hidden=hidden)
    logp = token_logprobs(logits, batch.completion)
    ent = token_entropy(logits) if entropy else None
    return TokenScores(logp, ent, states)
