"""Trained checkpoints (full and LoRA-merged) evaluated through vLLM give the HF path's parsed lists.

``TrainedPolicyRanker`` with ``engine=vllm`` ranks every instance of the batch the
harness passes in one engine call. The session's engine (SmolLM2, float32, CPU)
stands in for an engine started on the checkpoint directory: the saved
``policy/``'s weights are pushed into it (the route training uses), which is the
same engine on the same weights; the HF side loads the directory itself.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.vllm


def _checkpoint(root: Path, model: Any, tokenizer: Any) -> Path:
    from flexbench.train.checkpoint import save_policy
    from flexbench.train.config import TrainConfig

    save_policy(root, model, tokenizer)
    cfg = TrainConfig(model="smollm2", max_new_tokens=48, constrained=False)
    (root / "run.json").write_text(json.dumps({"method": "flexrec", "dataset": "kuairec", "needs": ["interest"],
                                               "train_need": "interest", "config": cfg.to_dict()}))
    return root


def _full(model: Any) -> Any:
    moved = copy.deepcopy(model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.02 * p.std() * torch.randn_like(p))
    return moved


def _lora(model: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return peft


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_trained_checkpoint_ranks_the_same_through_vllm(engine: Any, smollm2: tuple[Any, Any], tmp_path: Path,
                                                        restore_weights: Any, monkeypatch: pytest.MonkeyPatch,
                                                        kind: str) -> None:
    from flexbench.catalog import open_dataset
    from flexbench.llm.backends import vllm_backend
    from flexbench.llm.models import load_model_and_tokenizer
    from flexbench.ranker import RankerContext, build_ranker
    from flexbench.train.rollout.weights import policy_weights
    from flexbench.vocabulary import get_need

    model, tokenizer = smollm2
    out = _checkpoint(tmp_path / kind, _full(model) if kind == "full" else _lora(model), tokenizer)
    engines_started: list[str] = []

    def engine_on(ref: str, **kwargs: Any) -> Any:  # the session engine, loaded with the checkpoint's weights
        saved, _ = load_model_and_tokenizer(ref, device="cpu", dtype="float32")
        engine.update_weights(policy_weights(saved))
        engines_started.append(ref)
        return engine

    monkeypatch.setattr(vllm_backend, "VLLMBackend", engine_on)
    dataset = open_dataset("kuairec")
    instances = dataset.instances("test", limit=2)
    need = get_need("interest")
    calls: list[int] = []
    generate = engine.generate
    monkeypatch.setattr(engine, "generate", lambda prompts, *a, **k: calls.append(len(prompts)) or
                        generate(prompts, *a, **k))
    via_vllm = build_ranker("flexrec", RankerContext(dataset, options={"checkpoint": str(out), "engine": "vllm"})
                            ).rank(instances, need)
    via_hf = build_ranker("flexrec", RankerContext(dataset, options={"checkpoint": str(out),
                                                                     "engine": "transformers"})).rank(instances, need)
    assert engines_started == [str(out / "policy")] and calls == [2]  # one engine call for the whole batch
    assert [r.prompt for r in via_vllm] == [r.prompt for r in via_hf]
    assert [r.item_ids for r in via_vllm] == [r.item_ids for r in via_hf]
    assert [r.parsed for r in via_vllm] == [r.parsed for r in via_hf]
    assert [r.raw_output for r in via_vllm] == [r.raw_output for r in via_hf]
    assert any(r.item_ids for r in via_hf)
