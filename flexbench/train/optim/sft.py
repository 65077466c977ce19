"""Supervised fine-tuning on the optimal ranked list (TALLRec, the SFT baseline, Rec-R1's warm-up).

The target of a training prompt is the answer the prompt asks for, listing
the candidates by decreasing training gain (ties by item ID), followed by the
tokenizer's end-of-sequence token. The loss is the token-mean negative
log-likelihood of the target given the prompt::

    L_SFT = -1/N sum_i sum_t log pi(y_{i,t} | x_i, y_{i,<t})

with ``N`` the number of target tokens in the optimizer step, so micro-batches
accumulate to the full-batch gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from flexbench.llm.labels import FINAL_MARKER, PromptMode
from flexbench.train.optim.forward import encode_prompt, pack, score_completions
from flexbench.train.optim.loss import masked_sum_mean
from flexbench.train.tasks import PromptTask


@dataclass(frozen=True)
class SFTExample:
    """Prompt and target token IDs of one supervised example."""

    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]


def answer_text(candidate_ids: Sequence[str], ranked_ids: Sequence[str]) -> str:
    """The answer the prompts ask for: one bracketed label per line (:mod:`flexbench.llm.labels`)."""
    from flexbench.llm.labels import format_entry, label_map

    labels = label_map(candidate_ids)
    return "".join(format_entry(labels[item]) for item in ranked_ids)


def answer_prefix(mode: PromptMode) -> str:
    """What an SFT target starts with in prompt ``mode``: the ``Final ranking:`` line in the reason mode
    (there is no reference rationale to imitate), nothing in the ids mode."""
    return f"{FINAL_MARKER}\n" if mode is PromptMode.REASON else ""


def sft_example(tokenizer: Any, prompt_text: str, candidate_ids: Sequence[str],
                ranked_ids: Sequence[str], prefix: str = "") -> SFTExample:
    """Tokenise ``prompt_text`` and the answer ``prefix`` + the list of ``ranked_ids`` (+ EOS)."""
    prompt_ids = encode_prompt(tokenizer, prompt_text)
    target_ids = tokenizer(prefix + answer_text(candidate_ids, ranked_ids), add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        target_ids = [*target_ids, tokenizer.eos_token_id]
    return SFTExample(tuple(prompt_ids), tuple(target_ids))


def task_examples(tasks: Sequence[PromptTask], tokenizer: Any, *, seed: int,
                  prompt_options: Mapping[str, Any] | None = None) -> list[SFTExample]:
    """SFT examples of training prompts: each task's prompt (``build_prompt(**prompt_options)``) with its
    optimal list as the target (after the ``Final ranking:`` line in the reason mode)."""
    from flexbench.llm.prompts import build_prompt

    out = []
    for task in tasks:
        prompt = build_prompt(task.instance, task.need, seed=seed + task.position, tokenizer=tokenizer,
                              **(prompt_options or {}))
        out.append(sft_example(tokenizer, prompt.text, task.instance.candidate_ids, task.optimal_ids(),
                               prefix=answer_prefix(prompt.mode)))
    return out


def sft_loss(model: torch.nn.Module, examples: Sequence[SFTExample], pad_id: int,
             denom: float | None = None) -> torch.Tensor:
    """Token-mean NLL of the targets of ``examples`` (``denom``: target tokens of the whole step)."""
    device = next(model.parameters()).device
    batch = pack([e.prompt_ids for e in examples], [e.target_ids for e in examples], pad_id).to(device)
    scores = score_completions(model, batch)
    return masked_sum_mean(-scores.logprobs, batch.completion_mask, denom)


def sft_step(model: torch.nn.Module, examples: Sequence[SFTExample], *, pad_id: int, micro_batch_size: int,
             backward: Any = None) -> float:
    """Accumulate the gradient of :func:`sft_loss` over micro-batches; return the loss value.

    ``backward`` is the function that back-propagates (``accelerator.backward``
    under accelerate; ``Tensor.backward`` otherwise). The caller owns the
    optimizer step.
    """
    backward = backward or (lambda loss: loss.backward())
    total_tokens = float(sum(len(e.target_ids) for e in examples))
    value = 0.0
    for start in range(0, len(examples), micro_batch_size):
        loss = sft_loss(model, examples[start:start + micro_batch_size], pad_id, denom=total_tokens)
        backward(loss)
        value += float(loss.detach())
    return value
