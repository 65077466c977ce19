"""Generation with a transformers causal LM (CPU or GPU), batched, optionally constrained.

Prompts are tokenized as given (chat-templated text already holds its special
tokens, so none are added unless the tokenizer has no chat template), left-padded
in batches of ``batch_size``, and passed to ``model.generate``. Greedy when
``temperature == 0``; otherwise multinomial sampling with temperature and top-p
(top-k off), seeded with ``params.seed + index of the batch's first prompt``.
Each output keeps its token IDs up to and including the first EOS (which the
policy must learn to emit), and its text is
:func:`~flexbench.llm.parsing.decode_with_offsets`'s decoding of them, so
character offsets computed from ``token_ids`` line up with ``text``.

With ``candidate_ids`` decoding is constrained to a permutation of the labels
(:class:`~flexbench.llm.constrained.PermutationLogitsProcessor`) and
``max_new_tokens`` is raised, if needed, to fit the whole permutation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flexbench.llm.backends.base import Generation, SamplingParams
from flexbench.llm.constrained import PermutationLogitsProcessor
from flexbench.llm.parsing import decode_text
from flexbench.llm.progress import progress_bar


class TransformersBackend:
    """:class:`~flexbench.llm.backends.base.GenerationBackend` over a loaded model and tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 4, *, progress: bool = False,
                 add_special_tokens: bool | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; it must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
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
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new, "num_return_sequences": params.n, "eos_token_id": eos,
            "pad_token_id": self.tokenizer.pad_token_id, "logits_processor": processors,
        }
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        with torch.inference_mode():
            seqs = self.model.generate(**enc, **kwargs)
        rows = [self._to_generation(seq[width:].tolist(), set(eos)) for seq in seqs]
        return [rows[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    def _to_generation(self, ids: list[int], eos: set[int]) -> Generation:
        stop = next((i for i, tok in enumerate(ids) if tok in eos), None)
        kept = ids if stop is None else ids[: stop + 1]
        return Generation(text=decode_text(self.tokenizer, kept), token_ids=tuple(kept),
                          finish_reason="length" if stop is None else "stop")
