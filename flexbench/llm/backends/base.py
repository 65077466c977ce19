"""The generation interface every backend implements (transformers, vLLM, OpenAI).

One batch-level call: prompts in, for each prompt ``n`` generations out, in input
order. Greedy decoding (``temperature == 0``) is used for evaluation; sampling
with ``n`` rollouts per prompt for GRPO training. Passing ``candidate_ids``
asks for constrained decoding: each output is then a permutation of the labels
of that prompt's candidates (see :mod:`flexbench.llm.constrained`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings. ``temperature == 0`` means greedy; ``n`` outputs per prompt.

    ``seed`` makes sampling reproducible (per batch for transformers, per request
    for vLLM and OpenAI).
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens}; it must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}; use 0 for greedy or a positive value")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}; it must lie in (0, 1]")
        if self.n < 1:
            raise ValueError(f"n={self.n}; ask for at least one generation per prompt")
        if self.n > 1 and self.greedy:
            raise ValueError(f"n={self.n} with greedy decoding gives identical copies; "
                             "set temperature > 0 to sample several rollouts")

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (``temperature == 0``)."""
        return self.temperature == 0


@dataclass(frozen=True)
class Generation:
    """One generated continuation: decoded text, its token IDs (empty when the backend
    does not expose them) and why it stopped (``"stop"``, ``"length"`` ...).

    ``logprobs`` holds, when the backend reports them (vLLM), the sampling engine's
    log-probability ``log p(token_t | prompt, tokens_<t)`` of each generated token
    under the model's raw (untempered) distribution, one per ``token_ids`` entry;
    ``None`` otherwise. Training compares them with the trainer's own log-probs of
    the same tokens (the ``logprob_gap`` metric).
    """

    text: str
    token_ids: tuple[int, ...]
    finish_reason: str
    logprobs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.logprobs is not None and len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"{len(self.logprobs)} log-probs for {len(self.token_ids)} tokens")


@runtime_checkable
class GenerationBackend(Protocol):
    """Generates ``params.n`` continuations for each prompt, in input order."""

    def generate(self, prompts: Sequence[str], params: SamplingParams,
                 candidate_ids: Sequence[Sequence[str]] | None = None) -> list[list[Generation]]: ...
