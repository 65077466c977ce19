"""Trained policies as rankers: ``flexbench eval flexrec`` loads the saved checkpoint and ranks.

:class:`PolicyRanker` ranks with a causal LM exactly like a zero-shot LLM
ranker: the LLM layer's prompt, greedy generation through a generation
backend, the LLM layer's parser. The training loop validates with it on the
live policy; :class:`TrainedPolicyRanker` (the registry factory of the trained
methods) wraps it around a saved checkpoint.

Checkpoint resolution (``--checkpoint`` wins)::

    options["checkpoint"]                       a training output dir, or its policy/ dir
    <data>/checkpoints/<label>/<dataset>/<T>/   T = options["train_need"], else the
                                                test need, else "all" (joint training)

Each ranking records ``train_need`` (from the checkpoint's ``run.json``) in
``Ranking.extra`` so that results can say which need(s) the policy was trained on.

The token cap of evaluation is the one training validated with
(:func:`token_cap` of the ``run.json`` config: ``eval_max_new_tokens``, else
``max_new_tokens``, else the prompt mode's default, 1,024 for ``reason`` and 256
for ``ids``), so a reason-mode policy is never cut before ``Final ranking:``;
the ``max_new_tokens`` option overrides it. The ``engine`` option picks the
generation backend (:func:`eval_engine`): ``auto`` is vLLM when it is installed,
a CUDA GPU is visible and decoding is free (one engine call per batch the
harness passes, continuous batching, on the saved ``policy/``: LoRA adapters are
merged there), else transformers ``generate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.paths import checkpoint_dir
from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.train.checkpoint import POLICY as _POLICY
from flexbench.types import Instance, NeedSpec, Ranking

RUN_FILE = "run.json"
MODE_TOKEN_CAPS = {"ids": 256, "reason": 1024}  # greedy cap per prompt mode when the config names none
ENGINES = ("auto", "transformers", "vllm")


def token_cap(config: Mapping[str, Any]) -> int:
    """Greedy new-token cap of a training config (a ``TrainConfig.to_dict()``): what validation uses and what
    evaluation of its checkpoint uses (module docstring)."""
    cap = config.get("eval_max_new_tokens") or config.get("max_new_tokens")
    return int(cap) if cap else MODE_TOKEN_CAPS.get(str(config.get("prompt_mode", "ids")), MODE_TOKEN_CAPS["ids"])


def eval_engine(requested: str, constrained: bool) -> str:
    """``transformers`` or ``vllm`` for evaluation (module docstring)."""
    if requested not in ENGINES:
        raise FlexBenchError(f"engine={requested!r}; choose one of {', '.join(ENGINES)}")
    if constrained and requested == "vllm":
        raise FlexBenchError("constrained decoding runs on engine=transformers only (or set constrained=false)")
    if requested != "auto":
        return requested
    if constrained:
        return "transformers"
    import torch

    from flexbench.llm.backends.vllm_backend import vllm_installed

    return "vllm" if vllm_installed() and torch.cuda.is_available() else "transformers"


class PolicyRanker:
    """Greedy ranking with a causal LM through a generation backend."""

    def __init__(self, name: str, backend: Any, tokenizer: Any, *, max_new_tokens: int = 256,
                 constrained: bool = False, seed: int = 0, extra: Mapping[str, Any] | None = None,
                 prompt_options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.prompt_options = dict(prompt_options or {})  # build_prompt(**...): mode, max_item_chars
        self.backend, self.tokenizer = backend, tokenizer
        self.max_new_tokens, self.constrained, self.seed = max_new_tokens, constrained, seed
        self.extra = dict(extra or {})

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """One :class:`Ranking` per instance, in input order (emitted IDs, raw output, prompt)."""
        from flexbench.llm.backends import SamplingParams
        from flexbench.llm.parsing import parse_ranking
        from flexbench.llm.prompts import build_prompt

        if not instances:
            return []
        prompts = [build_prompt(x, need, seed=self.seed, tokenizer=self.tokenizer, **self.prompt_options)
                   for x in instances]
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0, n=1, seed=self.seed)
        shown = [p.shown_ids for p in prompts] if self.constrained else None
        outputs = self.backend.generate([p.text for p in prompts], params, candidate_ids=shown)
        rankings = []
        for x, prompt, gens in zip(instances, prompts, outputs, strict=True):
            text = gens[0].text
            parsed = parse_ranking(text, x.candidate_ids, mode=prompt.mode)
            rankings.append(Ranking(instance_id=x.instance_id, item_ids=parsed.emitted_ids, raw_output=text,
                                    parsed=parsed.parsed, prompt=prompt.text, extra=dict(self.extra)))
        return rankings


def read_run(out_dir: Path) -> dict[str, Any]:
    """The ``run.json`` of a training output directory (``{}`` when absent; unreadable: a one-line error)."""
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        return {}
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise FlexBenchError(f"{path}: unreadable ({type(err).__name__}: {str(err)[:80]}); the checkpoint is "
                             f"damaged: train it again (`flexbench train ... --out {path.parent}`)") from None
    if not isinstance(run, dict):
        raise FlexBenchError(f"{path}: a JSON {type(run).__name__}, expected an object; the checkpoint is damaged")
    return run


class TrainedPolicyRanker(RankerBase):
    """Registry factory of the trained methods: a saved policy, loaded on first use per need."""

    def __init__(self, ctx: RankerContext) -> None:
        opts = ctx.options
        self.method = str(opts.get("method", "flexrec"))
        self.name = str(opts.get("registry_name", self.method))
        self.dataset = ctx.dataset.name
        self.seed = ctx.seed
        self._train_need_option = opts.get("train_need")
        self.max_new_tokens = int(opts["max_new_tokens"]) if opts.get("max_new_tokens") else None  # None: the run's
        self.constrained = bool(opts.get("constrained", False))
        self.engine = str(opts.get("engine", "auto"))
        self.device = str(opts.get("device", "auto"))
        self.batch_size = int(opts.get("batch_size", 4))
        explicit = opts.get("checkpoint")
        self.explicit = Path(explicit) if explicit else None
        self.root = checkpoint_dir(self.name, self.dataset)
        self._loaded: dict[Path, PolicyRanker] = {}
        if self.explicit is not None and not _policy_dir(self.explicit).exists():
            raise RankerUnavailable(f"no checkpoint at {self.explicit}; run `flexbench train {self.method} "
                                    f"--dataset {self.dataset} --out {self.explicit}`")
        if self.explicit is None and not any(self.root.glob(f"*/{_POLICY}/config.json")):
            raise RankerUnavailable(f"no checkpoint at {self.root}/; run `flexbench train {self.method} "
                                    f"--dataset {self.dataset} --need N`")

    @property
    def train_need(self) -> str | None:
        """The training need(s) for provenance, when known before the test need is (else ``None``:
        the policy trained on the test need itself is used)."""
        if self._train_need_option:
            return str(self._train_need_option)
        if self.explicit is not None:
            return read_run(self.checkpoint_for("")).get("train_need")
        tags = {p.parent.parent.name for p in self.root.glob(f"*/{_POLICY}/config.json")}
        return "all" if tags == {"all"} else None

    def provenance(self, need: str) -> dict[str, Any]:
        """Run provenance of test need ``need``: ``train_need``, the base ``model`` and the ``checkpoint``
        of the policy that ranks it (only ``train_need``, when known, if there is none)."""
        try:
            out_dir = self.checkpoint_for(need)
        except RankerUnavailable:
            return {"train_need": self.train_need} if self.train_need else {}
        saved = _saved_provenance(out_dir)
        return {**saved, "train_need": str(self._train_need_option or saved["train_need"])}

    def check_available(self, need: str) -> None:
        """Raise :class:`RankerUnavailable` (with the command to run) when no policy ranks ``need``."""
        self.checkpoint_for(need)

    def checkpoint_for(self, need: str) -> Path:
        """The training output directory used for test need ``need`` (module docstring)."""
        if self.explicit is not None:
            return self.explicit.parent if self.explicit.name == _POLICY else self.explicit
        tags = [str(self._train_need_option)] if self._train_need_option else [need, "all"]
        for tag in tags:
            if _policy_dir(self.root / tag).exists():
                return self.root / tag
        raise RankerUnavailable(f"no checkpoint at {self.root / tags[0]}; run `flexbench train {self.method} "
                                f"--dataset {self.dataset} --need {tags[0]}`"
                                + ("" if self._train_need_option else " (or --needs all)"))

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """Rank with the policy trained for ``need`` (or the one named by the options)."""
        out_dir = self.checkpoint_for(need.name)
        if out_dir not in self._loaded:
            self._loaded[out_dir] = self._load(out_dir)
        return self._loaded[out_dir].rank(instances, need)

    def _load(self, out_dir: Path) -> PolicyRanker:
        saved = _saved_provenance(out_dir)
        backend, tokenizer = policy_backend(_policy_dir(out_dir), eval_engine(self.engine, self.constrained),
                                            device=self.device, batch_size=self.batch_size, seed=self.seed)
        cap = self.max_new_tokens or token_cap(read_run(out_dir).get("config") or {})
        return PolicyRanker(self.name, backend, tokenizer, max_new_tokens=cap,
                            constrained=self.constrained, seed=self.seed, prompt_options=prompt_options_of(out_dir),
                            extra={"train_need": saved["train_need"], "checkpoint": saved["checkpoint"]})


def policy_backend(policy_dir: Path, engine: str, *, device: str = "auto", batch_size: int = 4,
                   seed: int = 0) -> tuple[Any, Any]:
    """The generation backend and tokenizer of a saved policy: transformers ``generate`` on the loaded model,
    or a vLLM engine on the directory (bf16 on GPU; the whole batch in one call)."""
    if engine == "vllm":
        from flexbench.llm.backends.vllm_backend import VLLMBackend
        from flexbench.llm.models import load_tokenizer

        tokenizer = load_tokenizer(str(policy_dir))
        return VLLMBackend(str(policy_dir), seed=seed, tokenizer=tokenizer), tokenizer
    from flexbench.llm.backends import TransformersBackend
    from flexbench.llm.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(str(policy_dir), device=device)
    return TransformersBackend(model, tokenizer, batch_size=batch_size), tokenizer


def prompt_options_of(out_dir: Path) -> dict[str, Any]:
    """The prompt a policy was trained with (``run.json`` config: ``prompt_mode``, ``prompt_item_chars``), so it
    is evaluated on the same prompt; runs from before these options used the defaults."""
    config = read_run(out_dir).get("config") or {}
    return {"mode": config.get("prompt_mode", "ids"), "max_item_chars": int(config.get("prompt_item_chars", 300))}


def _saved_provenance(out_dir: Path) -> dict[str, Any]:
    """``train_need`` (``run.json``, else the directory's need tag), base ``model`` and ``checkpoint`` of a
    training output directory."""
    run = read_run(out_dir)
    return {"train_need": str(run.get("train_need") or out_dir.name), "model": run.get("model"),
            "checkpoint": str(out_dir)}


def _policy_dir(path: Path) -> Path:
    path = Path(path)
    return path if path.name == _POLICY and (path / "config.json").exists() else path / _POLICY
