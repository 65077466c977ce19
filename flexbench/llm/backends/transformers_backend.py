"""Generation with a transformers causal LM (CPU or GPU), batched, optionally constrained.

Prompts are tokenized as given (chat-templated text already holds its special
tokens, so none are added unless the tokenizer has no chat template), left-padded
in batches of ``batch_size``, and passed to ``model.generate``. Greedy when
``temperature == 0``; otherwise multinomial sampling with temperature and top-p
(top-k off), seeded with ``params.seed + index of the batch's first prompt``.

Every call builds a fresh :class:`transformers.GenerationConfig` from ``params``
alone (:func:`fresh_generation_config`) and swaps it in as the model's own for
the duration of the call (:func:`own_generation_config`): a checkpoint's
``generation_config.json`` (Qwen2.5-Instruct ships ``repetition_penalty`` 1.05,
``top_k`` 20, ``top_p`` 0.8) would otherwise fill every field the call leaves
unset, so training rollouts would come from a penalised, truncated
distribution the trainer never scores (silently off-policy) and greedy
evaluation would differ from vLLM's greedy. transformers merges the model's
config into a passed one (``update(defaults_only=True)`` in v5, values equal to
the global defaults in v4), so passing a fresh config is not enough; the swap
is. TRL's ``GRPOTrainer`` likewise builds its own ``GenerationConfig``. Only
the model's ``bos_token_id`` is kept; ``suppress_tokens`` (IDs the tokenizer
cannot decode) must be given to the backend explicitly.
Each output keeps its token IDs up to and including the first EOS (which the
policy must learn to emit), and its text is
:func:`~flexbench.llm.parsing.decode_with_offsets`'s decoding of them, so
character offsets computed from ``token_ids`` line up with ``text``.

With ``candidate_ids`` decoding is constrained to a permutation of the labels
(:class:`~flexbench.llm.constrained.PermutationLogitsProcessor`) and
``max_new_tokens`` is raised, if needed, to fit the whole permutation. Greedy
constrained requests with ``n = 1`` (evaluation, validation) go through
:func:`~flexbench.llm.constrained_greedy.greedy_permutations` unless
``cached_greedy=False``: the same greedy choices, one KV cache per batch and no
forward pass on forced tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from flexbench.llm.backends.base import Generation, SamplingParams
from flexbench.llm.constrained import PermutationLogitsProcessor
from flexbench.llm.parsing import decode_text
from flexbench.llm.progress import progress_bar


class TransformersBackend:
    """:class:`~flexbench.llm.backends.base.GenerationBackend` over a loaded model and tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 4, *, progress: bool = False,
                 add_special_tokens: bool | None = None, suppress_tokens: Sequence[int] = (),
                 cached_greedy: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; it must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.suppress_tokens = tuple(int(t) for t in suppress_tokens)  # never sampled (IDs the tokenizer lacks)
        self.cached_greedy = cached_greedy
        self.add_special_tokens = (not getattr(tokenizer, "chat_template", None)
                                   if add_special_tokens is None else add_special_tokens)
        if tokenizer.padding_side != "left":
            raise ValueError("batched generation needs left padding: set tokenizer.padding_side = 'left' "
                             "(load_model_and_tokenizer does this)")

    @property
    def eos_token_ids(self) -> list[int]:
        """End-of-sequence IDs of the model's generation config and the tokenizer."""
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return sorted(ids)

    def generate(self, prompts: Sequence[str], params: SamplingParams,
                 candidate_ids: Sequence[Sequence[str]] | None = None) -> list[list[Generation]]:
        """``params.n`` generations per prompt, in input order."""
        if candidate_ids is not None and len(candidate_ids) != len(prompts):
            raise ValueError(f"{len(candidate_ids)} candidate lists for {len(prompts)} prompts")
        out: list[list[Generation]] = []
        with progress_bar("generating", len(prompts), self.progress) as advance:
            for start in range(0, len(prompts), self.batch_size):
                stop = start + self.batch_size
                cands = None if candidate_ids is None else candidate_ids[start:stop]
                out += self._generate_batch(prompts[start:stop], params, cands, params.seed + start)
                advance(len(prompts[start:stop]))
        return out

    def _generate_batch(self, prompts: Sequence[str], params: SamplingParams,
                        candidate_ids: Sequence[Sequence[str]] | None, seed: int) -> list[list[Generation]]:
        import torch
        from transformers import LogitsProcessorList

        if candidate_ids is not None and params.greedy and params.n == 1 and self.cached_greedy:
            return self._cached_greedy_batch(prompts, candidate_ids)
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True,
                             add_special_tokens=self.add_special_tokens)
        enc = {k: enc[k].to(self.model.device) for k in ("input_ids", "attention_mask")}
        width = enc["input_ids"].shape[1]
        eos = self.eos_token_ids
        processors = LogitsProcessorList()
        max_new = params.max_new_tokens
        if candidate_ids is not None:
            proc = PermutationLogitsProcessor(self.tokenizer, candidate_ids, width, eos, n=params.n)
            processors.append(proc)
            max_new = max(max_new, proc.max_length())
        config = fresh_generation_config(params, max_new_tokens=max_new, eos_token_id=eos,
                                         pad_token_id=self.tokenizer.pad_token_id,
                                         bos_token_id=getattr(self.model.generation_config, "bos_token_id", None),
                                         suppress_tokens=self.suppress_tokens)
        if not params.greedy:
            torch.manual_seed(seed)
        with torch.inference_mode(), own_generation_config(self.model, config):
            seqs = self.model.generate(**enc, generation_config=config, logits_processor=processors)
        rows = [self._to_generation(seq[width:].tolist(), set(eos)) for seq in seqs]
        return [rows[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    def _cached_greedy_batch(self, prompts: Sequence[str], candidate_ids: Sequence[Sequence[str]]
                             ) -> list[list[Generation]]:
        from flexbench.llm.constrained_greedy import greedy_permutations

        eos = self.eos_token_ids
        outs = greedy_permutations(self.model, self.tokenizer, prompts, candidate_ids, eos,
                                   add_special_tokens=self.add_special_tokens, batch_size=len(prompts))
        return [[self._to_generation(ids, set(eos))] for ids in outs]

    def _to_generation(self, ids: list[int], eos: set[int]) -> Generation:
        stop = next((i for i, tok in enumerate(ids) if tok in eos), None)
        kept = ids if stop is None else ids[: stop + 1]
        return Generation(text=decode_text(self.tokenizer, kept), token_ids=tuple(kept),
                          finish_reason="length" if stop is None else "stop")


def fresh_generation_config(params: SamplingParams, *, max_new_tokens: int, eos_token_id: Sequence[int],
                            pad_token_id: int | None, bos_token_id: int | None = None,
                            suppress_tokens: Sequence[int] = ()) -> Any:
    """A :class:`transformers.GenerationConfig` holding ``params`` and nothing else (module docstring).

    Greedy: ``do_sample=False``. Sampling: ``temperature``, ``top_p``, ``top_k=0``
    (off), as the trainer's and vLLM's distributions. Every other logits
    transform is set to its neutral value explicitly (``repetition_penalty`` 1,
    ``no_repeat_ngram_size`` 0, no ``min_p``/``typical_p``/cutoffs), so nothing
    can be filled in from a checkpoint's ``generation_config.json``.
    """
    from transformers import GenerationConfig

    sampling = ({"do_sample": False} if params.greedy else
                {"do_sample": True, "temperature": float(params.temperature), "top_p": float(params.top_p),
                 "top_k": 0})
    return GenerationConfig(
        max_new_tokens=int(max_new_tokens), num_return_sequences=int(params.n), num_beams=1,
        eos_token_id=list(eos_token_id), pad_token_id=pad_token_id, bos_token_id=bos_token_id,
        repetition_penalty=1.0, no_repeat_ngram_size=0, length_penalty=1.0, encoder_repetition_penalty=1.0,
        typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, min_new_tokens=0, use_cache=True,
        suppress_tokens=list(suppress_tokens) or None, **sampling)


@contextmanager
def own_generation_config(model: Any, config: Any) -> Iterator[None]:
    """Make ``config`` the generation config of every module of ``model`` that holds one, inside the block.

    PEFT wrappers forward ``generation_config`` to the base model, so the swap is
    made on the modules that own the attribute (``vars(module)``), and undone on exit.
    """
    owners = [m for m in _modules(model) if "generation_config" in vars(m)]
    saved = [vars(m)["generation_config"] for m in owners]
    for m in owners:
        m.generation_config = config
    try:
        yield
    finally:
        for m, old in zip(owners, saved, strict=True):
            m.generation_config = old


def _modules(model: Any) -> list[Any]:
    modules = getattr(model, "modules", None)
    return list(modules()) if callable(modules) else [model]
