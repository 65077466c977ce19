"""GPT-4o (row ``gpt-4o``), or any model behind an OpenAI-compatible endpoint (rows ``openai:MODEL``).

``gpt-4o`` is OpenAI's GPT-4o; every other endpoint model is its own row,
``flexbench eval openai:MODEL --base-url URL`` (the ``openai`` family of
:data:`flexbench.ranker.FAMILIES`), stored and shown under that name, so two
models behind one server are two rows.

The same prompt as the local models (:mod:`flexbench.llm.prompts`) is sent as chat
messages through :class:`~flexbench.llm.backends.openai_backend.OpenAIBackend`
(temperature 0, retries with backoff, on-disk response cache under
``<cache>/openai`` so a rerun costs nothing). The API key comes from the
environment only and is never written to results, caches or logs; without a key
the factory raises :class:`~flexbench.ranker.RankerUnavailable` and
``flexbench eval --all`` skips the row with that reason.

Options: ``model`` (default ``gpt-4o``), ``base_url`` (any OpenAI-compatible
server, e.g. a local ``vllm serve``), ``api_key_env`` (default
``OPENAI_API_KEY``), ``concurrency``, ``max_retries``, ``timeout_s``,
``max_new_tokens``, ``max_item_chars``, ``progress``, ``prompt_mode`` (``ids`` or
``reason``, as for the zero-shot rankers). The run's provenance records the
prompt mode and version, the endpoint with any credential removed
(:func:`flexbench.secrets.redact_url`) and its host, and the sampling settings
(temperature, top-p, max new tokens, seed) that also key the response cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flexbench.llm.backends.base import SamplingParams
from flexbench.llm.backends.openai_backend import OpenAIBackend, OpenAIConfig, api_key_from_env, endpoint_host
from flexbench.llm.labels import PromptMode, prompt_mode_of
from flexbench.llm.prompts import PROMPT_VERSION, build_prompt
from flexbench.llm.ranking import config_from_options, to_ranking
from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.types import Instance, NeedSpec, Ranking


@dataclass(frozen=True)
class GPT4oSettings:
    """Decoding and prompt settings of the ranker (endpoint settings live in OpenAIConfig)."""

    max_new_tokens: int = 512
    max_item_chars: int = 300
    progress: bool = True
    prompt_mode: PromptMode = PromptMode.IDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt_mode", prompt_mode_of(self.prompt_mode))
        if self.max_new_tokens < 1 or self.max_item_chars < 20:
            raise ValueError("max_new_tokens must be >= 1 and max_item_chars >= 20")


class GPT4oRanker(RankerBase):
    """Zero-shot ranking through the OpenAI chat completions API."""

    def __init__(self, ctx: RankerContext) -> None:
        endpoint = config_from_options(OpenAIConfig, ctx.options, cache_dir=ctx.cache_dir / "openai")
        if api_key_from_env(endpoint.api_key_env) is None:
            raise RankerUnavailable(f"no API key: set the environment variable {endpoint.api_key_env} "
                                    f"(or name another one with --api-key-env) to run {endpoint.model}")
        self.settings = config_from_options(GPT4oSettings, ctx.options)
        self.name = str(ctx.options.get("registry_name", "gpt-4o"))
        self.model = endpoint.model  # recorded in run provenance
        self.seed = ctx.seed
        self.backend = OpenAIBackend(endpoint, progress=self.settings.progress)

    @property
    def sampling(self) -> SamplingParams:
        """The sampling settings of every request (greedy)."""
        return SamplingParams(max_new_tokens=self.settings.max_new_tokens, temperature=0.0, seed=self.seed)

    def provenance(self, need: str) -> dict[str, Any]:
        """What the run records: the model, the prompt mode and version, the endpoint without credentials
        and its host, and the sampling settings."""
        s = self.sampling
        return {"model": self.model, "prompt_mode": self.settings.prompt_mode.value, "prompt_version": PROMPT_VERSION,
                "endpoint": self.backend.endpoint, "endpoint_host": endpoint_host(self.backend.endpoint),
                "sampling": {"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens,
                             "seed": s.seed, "n": s.n}}

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One ranking per instance, in input order (prompts show each instance's display order)."""
        prompts = [build_prompt(x, need, seed=self.seed, max_item_chars=self.settings.max_item_chars,
                                mode=self.settings.prompt_mode) for x in instances]
        outputs = self.backend.generate([p.messages for p in prompts], self.sampling)
        return [to_ranking(x, p, out[0]) for x, p, out in zip(instances, prompts, outputs, strict=True)]
