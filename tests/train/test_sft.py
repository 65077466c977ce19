"""SFT on the optimal ranked list: the target parses back, the loss falls, TALLRec's LoRA trains only adapters."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from policy_fixtures import TOY_NEED, ToyGains, tiny_policy, toy_instances, toy_tokenizer, toy_trainer

from flexbench.llm.parsing import parse_ranking
from flexbench.train.checkpoint import save_policy
from flexbench.train.config import TrainConfig
from flexbench.train.curves import METRICS_FILE, read_metrics
from flexbench.train.optim.sft import answer_text, sft_loss, sft_step, task_examples
from flexbench.train.run import apply_lora_and_checkpointing
from flexbench.train.tasks import TaskSampler

__all__ = ["toy_tokenizer"]


def _tasks(n: int = 4) -> list:
    return TaskSampler(toy_instances(), [TOY_NEED], {TOY_NEED.name: ToyGains()}).tasks(0, n)


def test_target_is_the_optimal_list_in_the_prompt_answer_format() -> None:
    task = _tasks(1)[0]
    assert task.optimal_ids() == ("c0", "c1", "c2", "c3")  # gains 1, 0.2, 0, 0 (tie broken by ID)
    text = answer_text(task.instance.candidate_ids, task.optimal_ids())
    parsed = parse_ranking(text, task.instance.candidate_ids)
    assert parsed.parsed and parsed.item_ids == task.optimal_ids()


def test_sft_steps_lower_the_target_nll(toy_tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = tiny_policy(toy_tokenizer)
    examples = task_examples(_tasks(), toy_tokenizer, seed=0)
    assert all(e.target_ids[-1] == toy_tokenizer.eos_token_id for e in examples)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    pad = toy_tokenizer.pad_token_id
    with torch.no_grad():
        start = float(sft_loss(model, examples, pad))
    for _ in range(5):
        sft_step(model, examples, pad_id=pad, micro_batch_size=2)
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        end = float(sft_loss(model, examples, pad))
    assert end < start - 1.0, (start, end)


def test_tallrec_trains_only_lora_adapters_and_saves_a_merged_policy(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = TrainConfig(model="tiny", lora=True, lora_targets=("q_proj", "v_proj"))
    model = apply_lora_and_checkpointing(tiny_policy(toy_tokenizer), cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = toy_trainer(toy_tokenizer, tmp_path, method="tallrec", model=model, steps=3, sft_lr=1e-2,
                          sft_batch_size=2, lora=True)
    infos = [trainer.step() for _ in range(2)]
    assert [i["phase"] for i in infos] == ["sft", "sft"]
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], p) for n, p in frozen_before.items())
    assert any(not torch.equal(params[n], p) for n, p in lora_before.items())
    trainer.train()  # the last step, then the policy is saved with the adapters merged (in place)
    assert [r["phase"] for r in read_metrics(tmp_path / METRICS_FILE, "train")] == ["sft"]
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    assert not any("lora" in n for n, _ in saved.named_parameters())


def test_save_policy_round_trips_a_full_model(toy_tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    model = tiny_policy(toy_tokenizer)
    save_policy(tmp_path, copy.deepcopy(model), toy_tokenizer)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "policy")
    for (n, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), n


def test_reason_mode_targets_start_with_the_final_marker(toy_tokenizer) -> None:
    from flexbench.llm.labels import FINAL_MARKER
    from flexbench.llm.parsing import parse_ranking

    [ids_example] = task_examples(_tasks()[:1], toy_tokenizer, seed=0)
    [reason] = task_examples(_tasks()[:1], toy_tokenizer, seed=0, prompt_options={"mode": "reason"})
    text = toy_tokenizer.decode(list(reason.target_ids), skip_special_tokens=True)
    assert text.startswith(FINAL_MARKER) and reason.prompt_ids != ids_example.prompt_ids
    task = _tasks()[0]
    assert parse_ranking(text, task.instance.candidate_ids, mode="reason").item_ids == tuple(task.optimal_ids())
