"""Zero-shot ranking with a local instruction-tuned LLM (rows ``zero-shot`` and ``zero-shot-constrained``).

The model sees the shared prompt (:mod:`flexbench.llm.prompts`) and decodes
greedily; its text is parsed back into candidate IDs (:mod:`flexbench.llm.parsing`)
and returned as emitted, invalid and duplicate entries included, with the raw
output and the prompt, for the harness to repair and count (SPEC sections 4, 5).

Options (``--model`` ...): ``model`` (Hugging Face ID, local path or ``smollm2``,
the CPU default; the paper used ``Qwen/Qwen2.5-3B-Instruct``), ``max_new_tokens``,
``constrained`` (decode only permutations of the candidate labels; set by the
``zero-shot-constrained`` registry row), ``batch_size``, ``device``, ``dtype``,
``backend`` (``transformers``, or ``vllm`` where installed: ``.venv-vllm`` on CPU, or a GPU),
``max_item_chars``, ``progress``, ``prompt_mode`` (``ids``, the default: labels
only; ``reason``: a short rationale, then ``Final ranking:`` and the labels, see
:mod:`flexbench.llm.prompts`). The prompt mode and
:data:`~flexbench.llm.prompts.PROMPT_VERSION` are part of the run's provenance
(:meth:`ZeroShotRanker.provenance`); each ranking's ``extra`` holds its
``reasoning_chars``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flexbench.llm.backends.base import GenerationBackend, SamplingParams
from flexbench.llm.labels import PromptMode, prompt_mode_of
from flexbench.llm.models import DEFAULT_CPU_MODEL
from flexbench.llm.prompts import PROMPT_VERSION, build_prompt
from flexbench.llm.ranking import config_from_options, to_ranking
from flexbench.ranker import RankerBase, RankerContext
from flexbench.types import Instance, NeedSpec, Ranking

BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class ZeroShotConfig:
    """Settings of a zero-shot LLM ranker (see the module docstring)."""

    model: str = DEFAULT_CPU_MODEL
    max_new_tokens: int = 200
    constrained: bool = False
    batch_size: int = 4
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "transformers"
    max_item_chars: int = 300
    progress: bool = True
    prompt_mode: PromptMode = PromptMode.IDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_mode", prompt_mode_of(self.prompt_mode))
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.constrained and self.backend != "transformers":
            raise ValueError("constrained decoding needs backend='transformers'")


class ZeroShotRanker(RankerBase):
    """Greedy zero-shot LLM ranker; the model is loaded on the first ``rank`` call."""

    def __init__(self, ctx: RankerContext, backend: GenerationBackend | None = None,
                 tokenizer: Any = None) -> None:
        self.config = config_from_options(ZeroShotConfig, ctx.options)
        self.name = str(ctx.options.get("registry_name",
                                        "zero-shot-constrained" if self.config.constrained else "zero-shot"))
        self.model = self.config.model  # the model reference, recorded in run provenance
        self.seed = ctx.seed
        self.cache_root = ctx.cache_dir
        self._backend = backend
        self._tokenizer = tokenizer

    def provenance(self, need: str) -> dict[str, Any]:
        """What the run records: the model reference and the prompt's mode and version."""
        return {"model": self.model, "prompt_mode": self.config.prompt_mode.value, "prompt_version": PROMPT_VERSION}

    def _load(self) -> tuple[GenerationBackend, Any]:
        if self._backend is None:
            cfg = self.config
            if cfg.backend == "vllm":
                from flexbench.llm.backends.vllm_backend import VLLMBackend
                from flexbench.llm.models import load_tokenizer

                self._tokenizer = load_tokenizer(cfg.model, cache_root=self.cache_root)
                self._backend = VLLMBackend(cfg.model, dtype=cfg.dtype, seed=self.seed,
                                            tokenizer=self._tokenizer, cache_root=self.cache_root)
            else:
                from flexbench.llm.backends.transformers_backend import TransformersBackend
                from flexbench.llm.models import load_model_and_tokenizer

                model, self._tokenizer = load_model_and_tokenizer(cfg.model, device=cfg.device, dtype=cfg.dtype,
                                                                  cache_root=self.cache_root)
                self._backend = TransformersBackend(model, self._tokenizer, batch_size=cfg.batch_size,
                                                    progress=cfg.progress)
        return self._backend, self._tokenizer

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One ranking per instance, in input order (deterministic: greedy decoding)."""
        if not instances:
            return []
        backend, tokenizer = self._load()
        prompts = [build_prompt(x, need, seed=self.seed, tokenizer=tokenizer,
                                max_item_chars=self.config.max_item_chars, mode=self.config.prompt_mode)
                   for x in instances]
        params = SamplingParams(max_new_tokens=self.config.max_new_tokens, temperature=0.0, seed=self.seed)
        cands = [x.candidate_ids for x in instances] if self.config.constrained else None
        outputs = backend.generate([p.text for p in prompts], params, candidate_ids=cands)
        return [to_ranking(x, p, out[0]) for x, p, out in zip(instances, prompts, outputs, strict=True)]
