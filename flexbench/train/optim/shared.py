"""Prefix-shared scoring: the completions of one prompt scored in one row over a single copy of the prompt.

The unshared layout (:func:`flexbench.train.optim.forward.pack`) repeats the
prompt for every rollout, so a group of ``G`` rollouts processes its prompt ``G``
times (``2G`` with the reference). Here each prompt group is one row::

    [p_0 .. p_{P-1} | c^1_0 .. c^1_{T1-1} | c^2_0 .. | ... | c^n_.. | pad ...]

with position IDs ``0 .. P-1`` on the prompt and restarting at ``P`` on every
completion, and a block attention mask: query ``q`` sees key ``k`` iff
``k <= q`` and ``k`` lies in the prompt or in ``q``'s own completion (padding
sees the prompt and padding, so no row of the mask is empty). Every completion
token therefore sees exactly the tokens, at exactly the positions, it sees in its
own sequence: the two layouts give the same log-probabilities and gradients
(to float rounding; tested to 1e-5 in fp32). The logit predicting completion
token ``t`` of segment ``j`` sits at the prompt's last position for ``t = 0`` and
at token ``t - 1`` of segment ``j`` otherwise; only the columns some rollout
needs are projected to the vocabulary (``logits_to_keep`` as an index tensor).

Cost per group: ``P + sum_j T_j`` tokens through the MLPs and projections
instead of ``G P + sum_j T_j``; attention is one ``L x L`` block (``L = P +
sum_j T_j``) instead of ``G`` blocks of ``(P + T)^2``. The mask is a 4D tensor
handed to the model as is (transformers returns a 4D mask unchanged): boolean
for SDPA, additive for eager attention. Flash-attention kernels take no custom
mask, so :func:`supports_shared_prefix` is False for them and the trainer keeps
the unshared layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from flexbench.train.optim.forward import pack_supports

PROMPT, PAD = -1, -2
"""Segment IDs of prompt and padding columns (completions are 0, 1, ...)."""


@dataclass(frozen=True)
class SharedBatch:
    """Rows of prompt groups plus, per rollout, the tensors of :class:`~flexbench.train.optim.forward.PackedBatch`.

    ``source[b, t]`` is the flat index ``row * L + column`` of the logit that
    predicts completion token ``t`` of rollout ``b`` (0 on padding).
    """

    input_ids: torch.Tensor          # [R, L]
    position_ids: torch.Tensor       # [R, L]
    segments: torch.Tensor           # [R, L] completion index of each column, PROMPT or PAD
    source: torch.Tensor             # [B, T]
    completion: torch.Tensor         # [B, T]
    completion_mask: torch.Tensor    # [B, T]
    support: torch.Tensor | None = None
    support_mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> SharedBatch:
        """The same batch on ``device``."""
        return SharedBatch(*(None if t is None else t.to(device)
                             for t in (self.input_ids, self.position_ids, self.segments, self.source,
                                       self.completion, self.completion_mask, self.support, self.support_mask)))

    def forward_logits(self, model: torch.nn.Module, *, hidden: bool = False
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``[B, T, V]`` predicting each completion token (and the matching hidden states)."""
        return shared_logits(model, self, hidden=hidden)


def _attn_impl(model: torch.nn.Module) -> str:
    """The model's attention implementation (transformers' default, SDPA, when it names none)."""
    return str(getattr(getattr(model, "config", None), "_attn_implementation", None) or "sdpa")


def supports_shared_prefix(model: torch.nn.Module) -> bool:
    """Whether the model's attention takes a custom 4D mask (SDPA, eager, flex), so prefixes can be shared."""
    return "flash" not in _attn_impl(model)


def pack_shared(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
                supports: Sequence[Sequence[Sequence[int]] | None] | None = None) -> SharedBatch:
    """Pack rollouts into one row per distinct prompt (first-appearance order); see the module docstring."""
    if len(prompts) != len(completions) or not prompts:
        raise ValueError("pack_shared needs one completion per prompt and at least one sequence")
    rows: dict[tuple[int, ...], list[int]] = {}
    for b, p in enumerate(prompts):
        if not p:
            raise ValueError(f"sequence {b} has an empty prompt")
        rows.setdefault(tuple(int(t) for t in p), []).append(b)
    width = max(len(p) + sum(max(1, len(completions[b])) for b in members) for p, members in rows.items())
    t_width = max(1, max(len(c) for c in completions))
    n_rows, n = len(rows), len(prompts)
    ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n_rows, width), dtype=torch.long)
    seg = torch.full((n_rows, width), PAD, dtype=torch.long)
    source = torch.zeros((n, t_width), dtype=torch.long)
    comp = torch.full((n, t_width), pad_id, dtype=torch.long)
    cmask = torch.zeros((n, t_width), dtype=torch.float32)
    for r, (prompt, members) in enumerate(rows.items()):
        plen = len(prompt)
        ids[r, :plen], pos[r, :plen], seg[r, :plen] = torch.tensor(prompt), torch.arange(plen), PROMPT
        at = plen
        for j, b in enumerate(members):
            c = [int(t) for t in completions[b]]
            tlen = len(c)
            if tlen:
                ids[r, at:at + tlen] = torch.tensor(c)
                pos[r, at:at + tlen] = torch.arange(plen, plen + tlen)
                seg[r, at:at + tlen] = j
                comp[b, :tlen] = torch.tensor(c)
                cmask[b, :tlen] = 1.0
                source[b, :tlen] = r * width + torch.tensor([plen - 1, *range(at, at + tlen - 1)])
            at += max(1, tlen)
        pos[r, at:] = torch.arange(plen, plen + width - at)  # padding: harmless positions, seen only by padding
    support, support_mask = pack_supports(supports, completions, comp) if supports is not None else (None, None)
    return SharedBatch(ids, pos, seg, source, comp, cmask, support, support_mask)


def block_mask(segments: torch.Tensor, additive_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[R, 1, L, L]`` mask: causal, and a completion sees only the prompt and itself (module docstring).

    Boolean (``True`` = visible) by default; with ``additive_dtype`` 0 where
    visible and the dtype's minimum elsewhere (eager attention adds it).
    """
    length = segments.shape[1]
    idx = torch.arange(length, device=segments.device)
    causal = idx[None, :, None] >= idx[None, None, :]
    same = segments[:, :, None] == segments[:, None, :]
    prompt_key = (segments == PROMPT)[:, None, :]
    visible = (causal & (prompt_key | same)).unsqueeze(1)
    if additive_dtype is None:
        return visible
    zero = torch.zeros((), dtype=additive_dtype, device=segments.device)
    return torch.where(visible, zero, torch.finfo(additive_dtype).min)


def shared_logits(model: torch.nn.Module, batch: SharedBatch, *, hidden: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the rows once and gather, per rollout, the logits (and hidden states) of its completion tokens."""
    impl = _attn_impl(model)
    if not supports_shared_prefix(model):
        raise ValueError(f"attention implementation {impl!r} takes no custom mask: score without prefix sharing")
    dtype = _float_dtype(model) if impl == "eager" else None
    mask = block_mask(batch.segments, dtype)
    length = batch.input_ids.shape[1]
    columns = torch.unique(batch.source[batch.completion_mask > 0] % length) if bool(
        (batch.completion_mask > 0).any()) else torch.zeros(1, dtype=torch.long, device=batch.source.device)
    out = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids,
                logits_to_keep=columns, output_hidden_states=hidden, use_cache=False)
    lookup = torch.zeros(length, dtype=torch.long, device=columns.device)
    lookup[columns] = torch.arange(len(columns), device=columns.device)
    rows, cols = batch.source // length, lookup[batch.source % length]
    logits = out.logits[rows, cols]  # [B, T, V]
    states = out.hidden_states[-1][rows, batch.source % length] if hidden else None
    return logits, states


def _float_dtype(model: torch.nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled() and p.is_cuda else p.dtype
    return torch.float32


def any_prompt_shared(prompts: Sequence[Sequence[Any]]) -> bool:
    """Whether at least two rollouts share a prompt (otherwise sharing saves nothing)."""
    return len({tuple(p) for p in prompts}) < len(prompts)
