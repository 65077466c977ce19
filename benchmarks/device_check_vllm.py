"""Stage S5 of ``benchmarks/device_check.py``: a colocated vLLM engine on a tiny saved checkpoint.

Saves a random 2-layer Qwen2 (head size 64, which every vLLM attention backend
takes) with a BPE tokenizer trained here, starts :class:`VLLMBackend` on it
(bf16 and CUDA graphs on a GPU, sleep mode on; float32 and eager on CPU), then:

1. pushes weights moved by 5 % of their spread through the training route
   (:class:`~flexbench.train.rollout.engines.VLLMSync`: cast to the engine's dtype,
   the engine model's ``load_weights`` on GPUs) and checks that greedy decoding changed;
2. samples 2 prompts x 4 completions with their log-probs and reads
   ``logprob_gap`` against the trainer's scoring of the same tokens with the pushed
   weights (bf16 autocast on GPU, as training scores), and against the old weights
   (a stale engine) for scale;
3. on a GPU: sleeps (level 2), measures the memory freed, wakes by a push (cache
   emptied first) and checks that greedy decoding is what it was before sleeping.
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PROMPTS = ["<|im_start|>user\nrank the videos: river night city<|im_end|>\n<|im_start|>assistant\n",
           "<|im_start|>user\nwhich story first?<|im_end|>\n<|im_start|>assistant\n"]


def tiny_checkpoint(out: Path, tokenizer: Any, cuda: bool) -> Any:
    """A random 2-layer Qwen2 saved with ``tokenizer`` to ``out``; returns the fp32 model."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = Qwen2ForCausalLM(config).float()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return model.to("cuda" if cuda else "cpu").eval()


def trainer_logprobs(model: Any, engine: Any, gens: list[list[Any]], cuda: bool) -> tuple[Any, list[Any]]:
    """The trainer's log-probs ``[B, T]`` of the sampled tokens, and rollout stand-ins for ``logprob_gap``."""
    import torch

    from flexbench.train.optim.forward import pack, score_completions

    prompt_ids = [engine.encode(p) for p in PROMPTS]
    rows = [(prompt_ids[i], list(g.token_ids), g.logprobs) for i, group in enumerate(gens) for g in group]
    batch = pack([r[0] for r in rows], [r[1] for r in rows], 0).to(next(model.parameters()).device)
    with torch.no_grad(), torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
        logp = score_completions(model, batch).logprobs.float()
    return logp, [SimpleNamespace(completion_ids=r[1], sampling_logprobs=r[2]) for r in rows]


def run(workdir: Path) -> dict[str, Any]:
    import torch
    from gpu_smoke import make_tokenizer

    from flexbench.llm.backends import SamplingParams
    from flexbench.llm.backends.vllm_backend import VLLMBackend
    from flexbench.train.rollout.engines import VLLMSync, logprob_gap

    cuda = torch.cuda.is_available()
    tokenizer, _ = make_tokenizer([p * 30 for p in PROMPTS], 400, "bpe")
    model = tiny_checkpoint(workdir / "tiny", tokenizer, cuda)
    engine = VLLMBackend(str(workdir / "tiny"), dtype="bfloat16" if cuda else "float32",
                         gpu_memory_utilization=0.15 if cuda else 0.1, max_model_len=512, sleep_mode=cuda,
                         tokenizer=tokenizer, **({} if cuda else {"enforce_eager": True}))
    greedy = SamplingParams(max_new_tokens=16)
    before = [g[0].token_ids for g in engine.generate(PROMPTS, greedy)]
    moved = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.05 * p.std() * torch.randn_like(p))
    sync = VLLMSync(engine, sleep=cuda)
    push = sync(moved)
    after = [g[0].token_ids for g in engine.generate(PROMPTS, greedy)]
    gens = engine.generate(PROMPTS, SamplingParams(max_new_tokens=24, temperature=1.0, n=4, seed=0))
    logp, rollouts = trainer_logprobs(moved, engine, gens, cuda)
    stale, _ = trainer_logprobs(model, engine, gens, cuda)
    figures: dict[str, Any] = {"engine": engine.describe(), "weight_route": engine.weight_route(),
                               "push_mb": round(push["sync_mb"], 2), "push_s": round(push["sync_seconds"], 3),
                               "greedy_changed_by_push": after != before,
                               "logprob_gap": logprob_gap(logp, rollouts), "stale_gap": logprob_gap(stale, rollouts)}
    if cuda:
        free = torch.cuda.mem_get_info()[0]
        sync.release()  # sleep level 2
        figures["sleep_freed_gib"] = round((torch.cuda.mem_get_info()[0] - free) / 2**30, 2)
        sync(moved)  # wakes: cache emptied, weights, then KV cache
        figures["greedy_same_after_wake"] = [g[0].token_ids for g in engine.generate(PROMPTS, greedy)] == after
    del engine
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    problems = [k for k in ("greedy_changed_by_push", "greedy_same_after_wake") if figures.get(k) is False]
    if not figures["logprob_gap"] < min(0.1, figures["stale_gap"] / 3):
        problems.append("logprob_gap")
    if cuda and not figures["sleep_freed_gib"] > 0:
        problems.append("sleep_freed_gib")
    if problems:
        raise AssertionError(f"vLLM checks failed: {problems}: {figures}")
    return figures
