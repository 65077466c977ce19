"""Rollout-engine plumbing without vLLM: weight names for the engine (PEFT/DDP/FSDP), merged LoRA weights,
the engine choice and its log line, and the loop's weight pushes and ``logprob_gap``."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from policy_fixtures import tiny_llama, tiny_policy, toy_tokenizer, toy_trainer

from flexbench.errors import FlexBenchError
from flexbench.llm.backends.base import Generation
from flexbench.train.config import TrainConfig
from flexbench.train.curves import METRICS_FILE, read_metrics
from flexbench.train.rollout.engines import NoSync, choose_engine, logprob_gap, make_backend
from flexbench.train.rollout.weights import engine_name, policy_weights

__all__ = ["toy_tokenizer"]


@pytest.mark.parametrize(("name", "expected"), [
    ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.weight"),
    ("module.model.embed_tokens.weight", "model.embed_tokens.weight"),  # DDP
    ("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight", "model.layers.0.self_attn.q_proj.weight"),
    ("base_model.model.model.layers.0.self_attn.q_proj.base_layer.bias", "model.layers.0.self_attn.q_proj.bias"),
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight", None),
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight", None),
    ("base_model.model.model.embed_tokens.lora_embedding_A.default", None),
    ("base_model.model.model.layers.3.mlp.down_proj.lora_magnitude_vector.default.weight", None),
    ("base_model.model.lm_head.modules_to_save.default.weight", "lm_head.weight"),
    ("base_model.model.lm_head.original_module.weight", None),
    ("_fsdp_wrapped_module.model.layers.1._checkpoint_wrapped_module.mlp.up_proj.weight",
     "model.layers.1.mlp.up_proj.weight"),
    ("_orig_mod.model.norm.weight", "model.norm.weight"),  # torch.compile
])
def test_engine_names_are_the_checkpoints(name: str, expected: str | None) -> None:
    assert engine_name(name) == expected


def _tiny_lora(seed: int = 0) -> Any:
    from peft import LoraConfig, get_peft_model

    base = tiny_llama(96, seed=seed)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero; a trained adapter is not
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def test_lora_weights_are_merged_under_the_base_models_names() -> None:
    """What is pushed equals PEFT's own ``merge_and_unload``: same names as the plain model, same values."""
    model = _tiny_lora()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pushed = dict(policy_weights(model))
    merged = copy.deepcopy(model).merge_and_unload()
    expected = dict(merged.named_parameters(remove_duplicate=False))
    assert set(pushed) == set(expected) == {n for n, _ in tiny_llama(96).named_parameters(remove_duplicate=False)}
    for name, tensor in expected.items():
        torch.testing.assert_close(pushed[name], tensor.detach(), rtol=0, atol=1e-6)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(pushed[q], before[f"base_model.model.{q.replace('.weight', '.base_layer.weight')}"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the policy is not modified


def test_disabled_or_merged_adapters_add_nothing() -> None:
    model = _tiny_lora()
    plain = {n: p.detach().clone() for n, p in model.get_base_model().named_parameters()}
    with model.disable_adapter():
        pushed = dict(policy_weights(model))
    q = "model.layers.1.self_attn.v_proj.weight"
    assert torch.equal(pushed[q], plain[q.replace(".weight", ".base_layer.weight")])
    model.merge_adapter()  # already in the base weights: must not be added twice
    twice = {k: v.clone() for k, v in policy_weights(model)}  # views of the live weights: copy before unmerging
    model.unmerge_adapter()
    torch.testing.assert_close(twice[q], dict(policy_weights(model))[q], rtol=0, atol=1e-6)


def test_tied_parameters_are_pushed_under_each_name() -> None:
    """The tied LM head comes as well as the embedding, so the engine's LM head layer reloads it too."""
    model = tiny_llama(96)
    pushed = dict(policy_weights(model))
    assert list(pushed) == [n for n, _ in model.named_parameters(remove_duplicate=False)]
    assert pushed["lm_head.weight"] is not None and torch.equal(pushed["lm_head.weight"],
                                                                pushed["model.embed_tokens.weight"])


def test_logprob_gap_is_the_mean_absolute_token_difference() -> None:
    rows = [SimpleNamespace(completion_ids=(1, 2, 3), sampling_logprobs=(-1.0, -2.0, -0.5)),
            SimpleNamespace(completion_ids=(4,), sampling_logprobs=(-3.0,))]
    trainer = torch.tensor([[-1.0, -2.5, -0.5], [-2.0, 9.0, 9.0]])  # row 2 padded after one token
    assert logprob_gap(trainer, rows) == pytest.approx((0 + 0.5 + 0 + 1.0) / 4)
    assert logprob_gap(trainer, [SimpleNamespace(completion_ids=(1,), sampling_logprobs=None)]) is None
    assert logprob_gap(trainer, []) is None


def test_auto_engine_says_why_it_picked_transformers(toy_tokenizer, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    engine, why = choose_engine(TrainConfig(constrained=True))
    assert engine.value == "transformers" and "constrained" in why
    from flexbench.llm.backends import vllm_backend

    monkeypatch.setattr(vllm_backend, "vllm_installed", lambda: False)
    engine, why = choose_engine(TrainConfig(constrained=False))
    assert engine.value == "transformers" and "vLLM is not installed" in why
    assert choose_engine(TrainConfig(engine="vllm", constrained=False))[1] == "engine=vllm"
    backend, sync = make_backend(TrainConfig(constrained=False), tiny_policy(toy_tokenizer), toy_tokenizer)
    assert isinstance(sync, NoSync) and type(backend).__name__ == "TransformersBackend"
    assert "rollout engine: transformers generate on the live policy (engine=auto: vLLM is not installed" \
        in capsys.readouterr().err
    with pytest.raises(FlexBenchError, match="constrained rollouts need engine=transformers"):
        make_backend(TrainConfig(engine="vllm", constrained=True), None, toy_tokenizer)
    with pytest.raises(FlexBenchError, match="vllm_gpu_memory must be in"):
        TrainConfig(vllm_gpu_memory=1.5)


class _ScoringEngine:
    """A stand-in rollout engine: the transformers backend on its own copy of the policy, reporting the
    copy's log-probs of each sampled token (as vLLM's ``logprobs=0`` does); weights arrive only by pushes."""

    def __init__(self, policy: torch.nn.Module, tokenizer: Any) -> None:
        from flexbench.llm.backends import TransformersBackend

        self.model = copy.deepcopy(policy).eval()
        self.inner, self.tokenizer = TransformersBackend(self.model, tokenizer, batch_size=2), tokenizer
        self.pushes, self.releases = 0, 0

    @property
    def eos_token_ids(self) -> list[int]:
        return self.inner.eos_token_ids

    def generate(self, prompts: Any, params: Any, candidate_ids: Any = None) -> list[list[Generation]]:
        from flexbench.llm.constrained import support_of
        from flexbench.train.optim.forward import encode_prompt, pack, score_completions

        out = []
        for n, (prompt, gens) in enumerate(zip(prompts, self.inner.generate(prompts, params, candidate_ids),
                                               strict=True)):
            supports = None if candidate_ids is None else [  # log-probs of the (masked) sampling distribution
                support_of(self.tokenizer, candidate_ids[n], g.token_ids, self.eos_token_ids) for g in gens]
            batch = pack([encode_prompt(self.tokenizer, prompt)] * len(gens), [g.token_ids for g in gens],
                         self.tokenizer.pad_token_id, supports)
            with torch.no_grad():
                lp = score_completions(self.model, batch).logprobs
            out.append([Generation(g.text, g.token_ids, g.finish_reason,
                                   tuple(float(v) for v in lp[j, :len(g.token_ids)])) for j, g in enumerate(gens)])
        return out

    def __call__(self, policy: torch.nn.Module) -> dict[str, float]:  # the EngineSync push
        self.model.load_state_dict(dict(policy_weights(policy)), strict=False)
        self.pushes += 1
        return {"sync_seconds": 0.01}

    def release(self) -> None:
        self.releases += 1


def test_loop_pushes_after_every_update_and_logs_the_gap(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Rec-R1 with 1 SFT warm-up step then 2 RL steps: the engine gets the warmed-up weights before the first
    rollout and the new weights after each update, so the logged gap stays at float noise."""
    model = tiny_policy(toy_tokenizer)
    trainer = toy_trainer(toy_tokenizer, tmp_path, method="rec-r1", model=model, steps=2, sft_warmup_steps=1,
                          lr=1e-2, prompts_per_step=1, group_size=2, max_new_tokens=8)
    engine = _ScoringEngine(model, toy_tokenizer)
    trainer.sampler.backend, trainer.sync = engine, engine
    trainer.train(resume=False)
    rl = [r for r in read_metrics(tmp_path / METRICS_FILE, "train") if r["phase"] == "rl"]
    assert engine.pushes == 3 and engine.releases == 2  # warm-up weights, then after each of the 2 updates
    assert [r["sync_seconds"] for r in rl] == pytest.approx([0.02, 0.01])
    assert all(0 <= r["logprob_gap"] < 1e-5 for r in rl), rl
    policy = trainer.acc.unwrap_model(trainer.model)
    assert all(torch.equal(p, dict(engine.model.named_parameters())[n]) for n, p in policy.named_parameters())
