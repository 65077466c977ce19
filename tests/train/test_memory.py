"""The memory plan: parameter counts, measured activation coefficients, sharding, refusals, --dry-run."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest
import torch

from flexbench.errors import FlexBenchError
from flexbench.train.config import RolloutEngine, TrainConfig, load_preset
from flexbench.train.memory import (
    GIB,
    Setup,
    _llama_counts,
    check_fits,
    layer_activation_bytes,
    model_shape,
    plan_memory,
)
from flexbench.train.methods import get_method

FLEXREC = get_method("flexrec")


def _paper(**changes: object) -> TrainConfig:
    return TrainConfig.from_options({**load_preset("paper", "flexrec"), **changes})


def _rows(plan) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {c.name: c.bytes for c in plan.components}


def test_shipped_qwen_config_is_the_paper_model() -> None:
    m = model_shape("Qwen/Qwen2.5-3B-Instruct")
    assert (m.hidden, m.intermediate, m.layers, m.heads, m.kv_heads, m.vocab, m.tied) == \
        (2048, 11008, 36, 16, 2, 151936, True)
    assert m.params == 3_085_938_688  # 3.09 B, as the model card says
    assert model_shape("smollm2").params == 134_515_008


def _tiny_config(model_type: str, **extra: object) -> dict[str, object]:
    return {"model_type": model_type, "vocab_size": 300, "hidden_size": 64, "intermediate_size": 160,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, **extra}


@pytest.mark.parametrize("config", [
    _tiny_config("llama", tie_word_embeddings=True),
    _tiny_config("llama", tie_word_embeddings=False, attention_bias=True, mlp_bias=True),
    _tiny_config("qwen2", tie_word_embeddings=True),
    _tiny_config("mistral", tie_word_embeddings=False),
    _tiny_config("qwen3", tie_word_embeddings=True, head_dim=32),
])
def test_parameter_counts_match_instantiated_models(config: dict[str, object]) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    shape = {"hidden": 64, "intermediate": 160, "layers": 2, "heads": 4, "kv_heads": 2,
             "head_dim": int(config.get("head_dim", 16)), "vocab": 300, "model_type": config["model_type"],
             "tied": bool(config["tie_word_embeddings"])}
    total, layer = _llama_counts(config, shape)
    assert total == sum(p.numel() for p in model.parameters())
    assert layer == sum(p.numel() for p in model.model.layers[0].parameters())


def test_lora_count_matches_peft() -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = _tiny_config("llama", tie_word_embeddings=True)
    shape = replace(model_shape("smollm2"), hidden=64, intermediate=160, layers=2, heads=4, kv_heads=2, head_dim=16)
    for targets in (("q_proj", "v_proj"), ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj")):
        model = get_peft_model(AutoModelForCausalLM.from_config(AutoConfig.for_model(**config)),
                               LoraConfig(r=8, target_modules=list(targets)))
        assert shape.lora_params(8, targets) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def _saved_bytes_per_token(layers: int, bf16: bool) -> float:
    """Bytes saved for backward by a forward of a random Llama, per token (weights excluded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=192, intermediate_size=512,
                                         num_hidden_layers=layers, num_attention_heads=6, num_key_value_heads=2,
                                         tie_word_embeddings=True))
    seen: dict[int, int] = {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def keep(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, 256, (2, 128))
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t), cast:
        model(input_ids=ids, logits_to_keep=1, use_cache=False)
    weights = sum(p.numel() for p in model.model.layers.parameters()) * 2 if bf16 else 0  # autocast's bf16 copies
    return (sum(v for k, v in seen.items() if k not in params) - weights) / ids.numel()


@pytest.mark.parametrize("bf16", [False, True])
def test_layer_activation_coefficients_match_a_real_forward(bf16: bool) -> None:
    """The per-layer formula (fitted on other shapes) predicts the bytes a decoder layer saves for backward."""
    measured = _saved_bytes_per_token(2, bf16) - _saved_bytes_per_token(1, bf16)
    shape = replace(model_shape("smollm2"), hidden=192, intermediate=512, heads=6, kv_heads=2, head_dim=32)
    assert measured == pytest.approx(layer_activation_bytes(shape, bf16), rel=0.05)


def test_fsdp_divides_states_by_processes() -> None:
    setup = Setup(1, 79.6 * GIB, "cuda", RolloutEngine.TRANSFORMERS)
    ddp = _rows(plan_memory(_paper(), FLEXREC, setup))
    fsdp = _rows(plan_memory(_paper(sharding="fsdp"), FLEXREC, replace(setup, world=4)))
    for name in ("policy weights (fp32 master)", "gradients (fp32)", "optimizer (adamw)"):
        assert fsdp[name] == pytest.approx(ddp[name] / 4)
    assert ddp["optimizer (adamw)"] == pytest.approx(8 * 3_085_938_688)
    assert fsdp["gathered weights (generation)"] == pytest.approx(2 * 3_085_938_688)
    assert ddp["reference model (frozen)"] == fsdp["reference model (frozen)"]  # replicated


def test_lora_zero_kl_and_vllm_rows() -> None:
    setup = Setup(1, 79.6 * GIB, "cuda", RolloutEngine.TRANSFORMERS)
    assert "reference model (frozen)" not in _rows(plan_memory(_paper(lora=True), FLEXREC, setup))
    assert "reference model (frozen)" not in _rows(plan_memory(_paper(kl_coef=0.0), FLEXREC, setup))
    lora = _rows(plan_memory(_paper(lora=True), FLEXREC, setup))
    assert lora["optimizer (adamw)"] == pytest.approx(8 * model_shape("Qwen/Qwen2.5-3B-Instruct").lora_params(
        8, ("q_proj", "v_proj")))
    vllm = plan_memory(_paper(), FLEXREC, replace(setup, engine=RolloutEngine.VLLM))
    assert _rows(vllm)["vLLM engine share"] == pytest.approx(0.3 * 79.6 * GIB)
    assert "KV cache (HF generate)" not in _rows(vllm)
    checkpointed = plan_memory(_paper(), FLEXREC, setup)
    full = plan_memory(_paper(gradient_checkpointing=False), FLEXREC, setup)
    assert _rows(full)["activations (no checkpointing)"] > 5 * _rows(checkpointed)["activations (checkpointed)"]


def test_paper_preset_with_vllm_on_80gb_refuses_with_suggestions() -> None:
    setup = Setup(1, 79.6 * GIB, "cuda", RolloutEngine.VLLM)
    plan = plan_memory(_paper(), FLEXREC, setup)
    assert plan.fits is False and plan.peak_phase == "update"
    with pytest.raises(FlexBenchError) as err:
        check_fits(plan, _paper(), FLEXREC)
    message = str(err.value)
    assert "\n" not in message and "does not fit the 79.6 GiB GPU" in message
    assert "--set sharding=fsdp on 2 GPUs" in message and "--set lora=true" in message
    assert "memory_check=false" in message
    fsdp = plan_memory(_paper(sharding="fsdp"), FLEXREC, replace(setup, world=2))
    assert fsdp.fits and fsdp.total < plan.total
    check_fits(fsdp, _paper(sharding="fsdp"), FLEXREC)  # no error
    assert plan_memory(_paper(), FLEXREC, replace(setup, card_bytes=139.8 * GIB)).fits


def test_dry_run_prints_config_json_and_plan() -> None:
    """The issue's done-when: the paper preset resolves each method's own warm-up, and a plan follows."""
    from typer.testing import CliRunner

    from flexbench.cli import app

    for method, warmup in (("flexrec", 0), ("rec-r1", 25)):
        result = CliRunner().invoke(app, ["train", method, "--dataset", "kuairec", "--config",
                                          "flexbench/train/presets/paper.json", "--dry-run",
                                          "--gpu-memory-gb", "79.6", "--num-gpus", "2", "--set", "sharding=fsdp"])
        assert result.exit_code == 0, result.output
        resolved = json.loads(result.stdout)
        assert resolved["sft_warmup_steps"] == warmup and resolved["sharding"] == "fsdp"
        assert resolved["model"] == "Qwen/Qwen2.5-3B-Instruct"
        assert "memory plan: Qwen/Qwen2.5-3B-Instruct" in result.stderr
        assert "fsdp over 2" in result.stderr and "fits" in result.stderr


def test_check_before_training_plans_cpu_runs_against_ram(capsys: pytest.CaptureFixture[str]) -> None:
    from flexbench.train.preflight import check_before_training

    class CpuAccelerator:
        device, num_processes, is_main_process = torch.device("cpu"), 1, True
        state = None

    cfg = TrainConfig()  # SmolLM2-135M CPU defaults
    plan = check_before_training(cfg, FLEXREC, CpuAccelerator())
    assert plan is not None and plan.setup.device == "cpu" and plan.fits
    assert "GiB RAM per process" in capsys.readouterr().err
    assert check_before_training(replace(cfg, memory_check=False), FLEXREC, CpuAccelerator()) is None


def test_step_temporaries_fp32_keys_and_nccl_buffers_are_counted() -> None:
    """Issue 25, finding 8: foreach AdamW's parameter-sized temporary, fp32 keys under autocast, NCCL buffers."""
    p = 3_085_938_688
    shape = model_shape("Qwen/Qwen2.5-3B-Instruct")
    one = Setup(1, 79.6 * GIB, "cuda", RolloutEngine.TRANSFORMERS)
    rows = _rows(plan_memory(_paper(), FLEXREC, one))
    assert rows["AdamW foreach temporary"] == pytest.approx(4 * p)
    plan = plan_memory(_paper(), FLEXREC, one)
    step = plan.phase_bytes("step")
    assert step == pytest.approx(sum(rows[k] for k in ("policy weights (fp32 master)", "gradients (fp32)",
                                                        "optimizer (adamw)", "AdamW foreach temporary",
                                                        "reference model (frozen)")))
    g, seq = 8, 1500 + 1024
    assert rows["KV cache (HF generate)"] == pytest.approx(g * g * seq * shape.layers * shape.kv_width * (4 + 2))
    assert "NCCL buffers" not in rows
    fsdp = _rows(plan_memory(_paper(sharding="fsdp"), FLEXREC, replace(one, world=4)))
    assert fsdp["NCCL buffers"] == pytest.approx(0.5 * GIB)
    assert fsdp["reduce-scatter buffers (FSDP)"] == pytest.approx(8 * shape.layer_params)
    assert fsdp["AdamW foreach temporary"] == pytest.approx(p)  # sharded like the states
    cpu = _rows(plan_memory(_paper(), FLEXREC, replace(one, device="cpu")))
    assert cpu["AdamW temporaries"] == pytest.approx(8 * shape.vocab * shape.hidden)


def test_hsdp_and_deferred_fsdp_sync_change_the_sharded_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    p = 3_085_938_688
    setup = Setup(16, 79.6 * GIB, "cuda", RolloutEngine.TRANSFORMERS)
    full = _rows(plan_memory(_paper(sharding="fsdp"), FLEXREC, setup))
    assert full["optimizer (adamw)"] == pytest.approx(8 * p / 16)
    monkeypatch.setenv("FLEXBENCH_FSDP_SHARD_SIZE", "8")
    hsdp = _rows(plan_memory(_paper(sharding="fsdp"), FLEXREC, setup))
    assert hsdp["optimizer (adamw)"] == pytest.approx(8 * p / 8)
    monkeypatch.setenv("FLEXBENCH_FSDP_NO_SYNC", "1")
    assert _rows(plan_memory(_paper(sharding="fsdp"), FLEXREC, setup))["gradients (fp32)"] == pytest.approx(4 * p)
