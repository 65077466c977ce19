"""Staged device check for a first contact with a GPU: six stages, per-stage deadlines, one line each, minutes.

Needs only torch, transformers, accelerate, peft, numpy, tokenizers (vLLM if it
imports) and this repository; never the model hub (``HF_HUB_OFFLINE=1``).
Every stage appends one JSON object to ``--out`` (JSON Lines; default
``$OUT/device_check.jsonl``) as it ends, so a run killed by a timeout still
reports the stages it finished, and prints one line::

    S<n> PASS|FAIL|SKIP <seconds>s key=value ...

followed, on failure, by the last lines of the traceback. The stages:

* **S0** versions and API probes (:mod:`flexbench.train.versions`) plus a real
  ``logits_to_keep`` forward; a failed required probe stops the run.
* **S1** numerics on a 2-layer Qwen2-shaped model on the device (fp32): left-padded
  vs unpadded and prefix-shared vs unshared log-probs agree; gradient
  checkpointing on vs off gives the same gradients (full and LoRA); masked
  (constrained) scoring equals the log-softmax over each step's support.
* **S2** the paper shape (Qwen2.5-3B architecture, random weights, bf16 autocast,
  checkpointing, 8 rollouts of 1,500 + 1,024 tokens, micro-batch 4) through the
  real update code: peak allocated / reserved memory per phase (log-prob, update,
  optimizer step) beside the memory plan's rows for the same settings.
* **S3** two real training steps of :class:`~flexbench.train.loop.PolicyTrainer`
  (the loop ``flexbench train`` runs) via ``benchmarks/gpu_smoke.py``: rollout /
  log-prob / update / sync seconds and tokens/s.
* **S4** FSDP2 in one process (NCCL on a GPU, gloo on CPU): greedy generation under
  gathered weights equals the unsharded model's; gradient sync deferral; a sharded
  (``torch.distributed.checkpoint``) save and restore.
* **S5** when vLLM imports: an engine on a tiny saved checkpoint, perturbed weights
  pushed (bf16 on GPU), ``logprob_gap`` read against the trainer's scoring, and on
  a GPU sleep / wake with the cache emptied.

    python benchmarks/device_check.py                       # one GPU, about 6 minutes
    python benchmarks/device_check.py --tiny --out /tmp/dc.jsonl   # CPU, every stage it can, under a minute
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEADLINES = {"S0": 40, "S1": 60, "S2": 120, "S3": 150, "S4": 60, "S5": 180}  # seconds on one H100
TINY_DEADLINES = {name: 60 for name in DEADLINES}


class StageTimeout(Exception):
    """A stage ran past its deadline (raised by SIGALRM)."""


class Skip(Exception):
    """A stage that cannot run here (the message says why)."""


# ------------------------------------------------------------------------------------------ helpers
def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def qwen2_tiny(vocab: int, seed: int = 0, layers: int = 2) -> Any:
    """A random Qwen2-shaped model (qkv bias, tied embeddings, GQA) with ``layers`` layers, fp32, on the device."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, attn_implementation="sdpa")
    return Qwen2ForCausalLM(config).float().to(device())


def random_rollouts(vocab: int, prompts: list[int], completions: list[int], seed: int) -> tuple[list, list]:
    import torch

    g = torch.Generator().manual_seed(seed)
    p = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in prompts]
    c = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in completions]
    return p, c


def max_gap(a: Any, b: Any, mask: Any = None) -> float:
    d = (a.float() - b.float()).abs()
    return float((d * mask).max() if mask is not None else d.max())


# ------------------------------------------------------------------------------------------- stages
def stage0(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from flexbench.train.versions import runtime_report, version_line

    report = runtime_report(vllm=True)
    failed = [p["name"] for p in report["probes"] if p["required"] and not p["ok"]]
    model = qwen2_tiny(64)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[1, 2, 3, 4]], device=device()), logits_to_keep=1).logits
    if logits.shape[1] != 1:
        failed.append(f"logits_to_keep returned {logits.shape[1]} positions")
    out = {"versions": version_line(report), "probes": report["probes"], "failed": failed}
    if failed:
        raise AssertionError(f"required probes failed: {failed}")
    return out


def stage1(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from flexbench.train.optim.forward import completion_logits, pack, score_completions
    from flexbench.train.optim.shared import pack_shared, supports_shared_prefix

    vocab, tol = 256, 1e-4
    model = qwen2_tiny(vocab).eval()
    prompts, comps = random_rollouts(vocab, [9, 5, 7], [6, 4, 5], seed=1)
    figures: dict[str, Any] = {}
    with torch.no_grad():
        batch = pack(prompts, comps, 0).to(device())
        together = score_completions(model, batch).logprobs
        alone = [score_completions(model, pack([p], [c], 0).to(device())).logprobs[0] for p, c in zip(prompts, comps)]
        figures["padded_gap"] = max(max_gap(together[i, :len(c)], alone[i]) for i, c in enumerate(comps))
        group_p, group_c = [prompts[0]] * 3, comps
        if supports_shared_prefix(model):
            shared = score_completions(model, pack_shared(group_p, group_c, 0).to(device())).logprobs
            unshared = score_completions(model, pack(group_p, group_c, 0).to(device())).logprobs
            figures["shared_gap"] = max_gap(shared, unshared, pack(group_p, group_c, 0).completion_mask.to(device()))
        supports = [[sorted({tok, *range(3, 3 + 5)}) for tok in c] for c in comps]
        masked = pack(prompts, comps, 0, supports).to(device())
        got = score_completions(model, masked).logprobs
        logits, _ = completion_logits(model, masked)
        want = torch.zeros_like(got)
        for i, c in enumerate(comps):
            for t, tok in enumerate(c):
                allowed = torch.tensor(supports[i][t], device=device())
                want[i, t] = torch.log_softmax(logits[i, t, allowed].float(), -1)[supports[i][t].index(tok)]
        figures["masked_gap"] = max_gap(got, want, masked.completion_mask)
    figures["checkpointing_grad_gap_full"] = checkpointing_gap(model, batch, lora=False)
    figures["checkpointing_grad_gap_lora"] = checkpointing_gap(model, batch, lora=True)
    bad = {k: v for k, v in figures.items() if v > tol}
    if bad:
        raise AssertionError(f"gaps above {tol}: {bad}")
    return figures


def checkpointing_gap(model: Any, batch: Any, *, lora: bool) -> float:
    """Max |gradient difference| / max |gradient| between checkpointing off and on (same weights, same batch)."""
    import torch

    from flexbench.train.optim.forward import score_completions

    def grads(checkpointing: bool) -> dict[str, Any]:
        m = copy.deepcopy(model).train()
        if lora:
            from peft import LoraConfig, get_peft_model

            torch.manual_seed(3)
            m = get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             init_lora_weights="gaussian"))
        if checkpointing:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if lora:
                m.enable_input_require_grads()
        (score_completions(m, batch).logprobs * batch.completion_mask).sum().backward()
        return {n: p.grad.detach().clone() for n, p in m.named_parameters() if p.grad is not None}

    off, on = grads(False), grads(True)
    scale = max(float(g.abs().max()) for g in off.values())
    return max(max_gap(off[n], on[n]) for n in off) / max(scale, 1e-12)


def stage2(args: argparse.Namespace) -> dict[str, Any]:
    """The paper shape through the update code; peak memory per phase beside the plan."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from flexbench.train.config import TrainConfig, load_preset
    from flexbench.train.memory import GIB, Setup, model_config, plan_memory, shape_from_config
    from flexbench.train.methods import get_method
    from flexbench.train.optim.forward import pack

    dev = device()
    d = model_config("Qwen/Qwen2.5-3B-Instruct")
    prompt, completion, rollouts, micro = 1500, 1024, 8, 4
    if args.tiny:
        d.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, bos_token_id=None, eos_token_id=None)
        prompt, completion = 48, 16
    cfg = TrainConfig.from_options({**load_preset("paper", "flexrec"), "micro_batch_size": micro, "model": "x",
                                    "plan_prompt_tokens": prompt, "max_new_tokens": completion,
                                    "engine": "transformers", "precision": "bf16" if dev == "cuda" else "no"})
    card = float(torch.cuda.get_device_properties(0).total_memory) if dev == "cuda" else None
    plan = plan_memory(cfg, get_method("flexrec"), Setup(1, card, dev), shape_from_config(d, "paper shape"))
    config = AutoConfig.for_model(**d)
    torch.manual_seed(0)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(config).float()
        reference = AutoModelForCausalLM.from_config(config)
    reference.load_state_dict(model.state_dict())
    reference.to(torch.bfloat16 if dev == "cuda" else torch.float32).eval().requires_grad_(False)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    p, c = random_rollouts(config.vocab_size, [prompt] * rollouts, [completion] * rollouts, seed=2)
    batches = [pack(p[i:i + micro], c[i:i + micro], 0).to(dev) for i in range(0, rollouts, micro)]
    measured = measure_phases(model, reference, optimizer, batches, float(rollouts * completion))
    figures: dict[str, Any] = {"params": sum(x.numel() for x in model.parameters()),
                               "plan_peak_phase": plan.peak_phase, "plan_total_gib": plan.total / GIB}
    for name in ("logprob", "update", "step"):
        planned = plan.phase_bytes(name)
        figures[f"plan_{name}_gib"] = round(planned / GIB, 2)
        if name in measured:
            alloc, reserved = measured[name]
            figures[f"{name}_alloc_gib"], figures[f"{name}_reserved_gib"] = round(alloc / GIB, 2), round(reserved / GIB, 2)
            figures[f"{name}_alloc_over_plan"] = round(alloc / planned, 3)
    figures["plan_rows_gib"] = {row.name: round(row.bytes / GIB, 2) for row in plan.components}
    del model, reference, optimizer, batches
    if dev == "cuda":
        torch.cuda.empty_cache()
        reserved = max(r for _, r in measured.values())
        figures["reserved_over_plan_total"] = round(reserved / plan.total, 3)
        if reserved > plan.total:  # the plan (with its headroom) must cover what the allocator reserved
            raise AssertionError(f"peak reserved {reserved / GIB:.2f} GiB exceeds the plan's {plan.total / GIB:.2f} GiB: "
                                 f"{figures}")
    return figures


def measure_phases(model: Any, reference: Any, optimizer: Any, batches: list[Any], denom: float
                   ) -> dict[str, tuple[int, int]]:
    """Peak (allocated, reserved) CUDA bytes of the log-prob, update and optimizer-step phases of the trainer's
    update code, on the second of two iterations (AdamW's state exists then, as in every step after the first)."""
    import torch

    from flexbench.train.optim.forward import score_completions
    from flexbench.train.optim.loss import policy_loss

    dev = device()
    autocast = torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda")
    measured: dict[str, tuple[int, int]] = {}

    def phase(name: str, work: Callable[[], Any]) -> Any:
        if dev == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        result = work()
        if dev == "cuda":
            torch.cuda.synchronize()
            measured[name] = (torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved())
        return result

    def update(refs: list[Any]) -> None:
        for b, ref in zip(batches, refs, strict=True):
            with autocast:
                scores = score_completions(model, b, entropy=True)
                out = policy_loss(scores.logprobs, scores.logprobs.detach(), torch.ones_like(ref), b.completion_mask,
                                  clip_eps=0.2, ref_logprobs=ref, kl_coef=0.01, entropy=scores.entropy,
                                  entropy_coef=0.005, denom=denom)
            out.loss.backward()

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        with torch.no_grad():
            refs = phase("logprob", lambda: [score_completions(reference, b).logprobs.detach() for b in batches])
        phase("update", lambda refs=refs: update(refs))
        phase("step", step)
    return measured


def stage3(args: argparse.Namespace) -> dict[str, Any]:
    """Two PolicyTrainer steps through gpu_smoke (paper settings, cut to fit the deadline)."""
    import gpu_smoke

    smoke = argparse.Namespace(tiny=args.tiny, steps=2, prompts_per_step=2, max_new_tokens=16 if args.tiny else 256,
                               candidates=6 if args.tiny else 30, tokenizer="bpe", lora=False,
                               budget_s=args.deadline - 10, workdir=args.workdir / "s3")
    figures = gpu_smoke.run(smoke)
    keys = ("time_rollout", "time_logprob", "time_update", "time_sync", "rollout_tokens_per_s", "update_tokens_per_s")
    out: dict[str, Any] = {"steps_run": figures["steps_run"], "allocated_over_plan": figures["allocated_over_plan"]}
    for k, step in enumerate(figures["steps"], 1):
        out.update({f"step{k}_{key}": round(float(step[key]), 3) for key in keys})
    if figures["steps_run"] < 2:
        raise AssertionError(f"only {figures['steps_run']} of 2 steps fit the deadline")
    return out


def stage4(args: argparse.Namespace) -> dict[str, Any]:
    """FSDP2 over one process: gathered generation, deferred gradient sync, sharded save and restore."""
    import torch
    import torch.distributed as dist
    from gpu_smoke import make_tokenizer

    from flexbench.llm.backends import SamplingParams, TransformersBackend
    from flexbench.train.checkpoint import Progress, load_checkpoint, save_training_state
    from flexbench.train.config import TrainConfig
    from flexbench.train.distributed import gathered_weights, iter_full_parameters, shard_model

    tokenizer, _ = make_tokenizer(["a tiny corpus for the device check tokenizer " * 20], 300, "bpe")
    plain = qwen2_tiny(len(tokenizer)).eval()
    plain.generation_config.eos_token_id = tokenizer.eos_token_id
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    acc = SimpleNamespace(num_processes=1, device=torch.device(device()), is_main_process=True,
                          wait_for_everyone=lambda: None, unwrap_model=lambda m: m)
    cfg = TrainConfig(model="x", sharding="fsdp", precision="no")
    try:
        sharded = shard_model(copy.deepcopy(plain), cfg, acc, allow_single_process=True)
        prompts = ["<|im_start|>user\nrank these<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>user\nhi<|im_end|>\n"]
        greedy = SamplingParams(max_new_tokens=12)
        want = [g[0].token_ids for g in TransformersBackend(plain, tokenizer).generate(prompts, greedy)]
        with torch.no_grad(), gathered_weights(sharded):
            got = [g[0].token_ids for g in TransformersBackend(sharded, tokenizer).generate(prompts, greedy)]
        optimizer = torch.optim.AdamW(sharded.parameters(), lr=1e-2)
        ids = torch.tensor([[5, 6, 7, 8, 9]], device=device())
        sharded.train()
        sharded(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        started = time.perf_counter()
        save_training_state(args.workdir / "s4", Progress(1, 2), model=sharded, optimizer=optimizer,
                            scheduler=scheduler, accelerator=acc)
        save_s = time.perf_counter() - started
        fresh = shard_model(copy.deepcopy(plain), cfg, acc, allow_single_process=True)
        fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
        progress = load_checkpoint(args.workdir / "s4", model=fresh, optimizer=fresh_opt,
                                   scheduler=torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda s: 1.0))
        saved = dict(iter_full_parameters(sharded))
        restored_gap = max(max_gap(saved[k], v) for k, v in iter_full_parameters(fresh))
        backend = dist.get_backend()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    figures = {"backend": backend, "generation_equal": got == want, "restored_gap": restored_gap,
               "resumed_step": progress.step if progress else None, "save_seconds": round(save_s, 3)}
    if got != want or restored_gap > 0 or progress != Progress(1, 2):
        raise AssertionError(f"FSDP check failed: {figures}")
    return figures


def stage5(args: argparse.Namespace) -> dict[str, Any]:
    """vLLM: engine on a tiny checkpoint, perturbed push, logprob_gap in the engine's dtype, sleep/wake."""
    from flexbench.llm.backends.vllm_backend import vllm_installed

    if not vllm_installed():
        raise Skip("vLLM is not installed")
    from device_check_vllm import run as run_vllm

    return run_vllm(args.workdir / "s5")


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "S0": stage0, "S1": stage1, "S2": stage2, "S3": stage3, "S4": stage4, "S5": stage5}


# ------------------------------------------------------------------------------------------- driver
def _alarm(_signum: int, _frame: Any) -> None:
    raise StageTimeout("deadline passed")


def line_of(record: dict[str, Any]) -> str:
    """``S<n> PASS|FAIL|SKIP <seconds>s key=value ...`` (scalar figures only)."""
    pairs = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record["figures"].items()
             if isinstance(v, (int, float, str, bool)) or v is None]
    why = [f"reason={record['reason']!r}"] if record.get("reason") else []
    return " ".join([record["stage"], record["status"], f"{record['seconds']:.1f}s", *why, *pairs])


def run_stage(name: str, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """Run one stage under ``deadline`` seconds; its record (status, seconds, figures, traceback tail)."""
    started = time.perf_counter()
    record: dict[str, Any] = {"stage": name, "deadline_s": deadline, "figures": {}}
    args.deadline = deadline
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max(1, int(deadline)))
    try:
        record["figures"] = STAGES[name](args)
        record["status"] = "PASS"
    except Skip as why:
        record.update(status="SKIP", reason=str(why))
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            raise
        record.update(status="FAIL", reason=f"{type(err).__name__}: {str(err)[:300]}",
                      traceback=traceback.format_exc().rstrip().splitlines()[-8:])
    finally:
        signal.alarm(0)
    record["seconds"] = time.perf_counter() - started
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Tiny shapes: every stage it can, on CPU, in seconds.")
    parser.add_argument("--stages", default=",".join(STAGES), help="Comma-separated stages (default: all).")
    parser.add_argument("--budget-s", type=float, default=360.0, help="Whole run; a stage gets what is left.")
    parser.add_argument("--out", type=Path, default=None, help="JSON Lines (default $OUT/device_check.jsonl).")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "device_check")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    out = args.out or Path(os.environ.get("OUT", ".")) / "device_check.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    deadlines = TINY_DEADLINES if args.tiny else DEADLINES
    started, failed = time.perf_counter(), 0
    for name in [s.strip() for s in args.stages.split(",") if s.strip()]:
        left = args.budget_s - (time.perf_counter() - started)
        if left < 5:
            record = {"stage": name, "status": "SKIP", "seconds": 0.0, "reason": "run budget spent", "figures": {}}
        else:
            record = run_stage(name, args, min(deadlines[name], left))
        print(line_of(record), flush=True)
        for tb in record.get("traceback", []):
            print(f"    {tb}", flush=True)
        with out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        failed += record["status"] == "FAIL"
        if name == "S0" and record["status"] == "FAIL":
            print("S0 failed: stopping (fix the versions first)", flush=True)
            return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
