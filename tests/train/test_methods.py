"""Methods as data, the config, and the credit each method gives to tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from policy_fixtures import TOY_IDS, TOY_NEED, ToyGains, smol_tokenizer, toy_instances

from flexbench.errors import FlexBenchError
from flexbench.llm.labels import format_entry, label_map
from flexbench.llm.parsing import decode_with_offsets, parse_ranking
from flexbench.ranker import REGISTRY, RankerKind
from flexbench.train.config import TrainConfig, load_preset
from flexbench.train.credit.assign import group_credit, reward_row
from flexbench.train.methods import METHODS, Advantage, Algorithm, ItemReward, get_method
from flexbench.train.rollout.sampler import credit_rollouts
from flexbench.train.run import build_config
from flexbench.train.tasks import PromptTask, TaskSampler
from flexbench.trainers import TRAINERS, TrainRequest

__all__ = ["smol_tokenizer"]

INTERFACE_LABELS = {"flexrec", "flexrec-noncausal", "flexrec-independent", "flexrec-rawcritic", "flexrec-userknn",
                    "flexrec-itemknn", "flexrec-ppo", "flexrec-dense", "rec-r1", "rank-grpo", "tallrec", "sft"}


def test_method_table_covers_the_interface_labels_and_the_paper_settings() -> None:
    assert INTERFACE_LABELS <= set(METHODS)
    assert {"flexrec-ppo-noncausal", "flexrec-ppo-independent", "ppo"} <= set(METHODS)
    assert len({m.label for m in METHODS.values()}) == len(METHODS)
    flexrec = METHODS["flexrec"]
    assert (flexrec.item_reward, flexrec.advantage, flexrec.uncertainty) == (ItemReward.CAUSAL, Advantage.ITEM_GRPO,
                                                                             True)
    assert METHODS["rec-r1"].sft_warmup_steps == 25 and METHODS["rec-r1"].advantage is Advantage.SEQUENCE_GRPO
    assert METHODS["rank-grpo"].item_reward is ItemReward.RANK_LEVEL
    assert METHODS["tallrec"].algorithm is Algorithm.SFT and METHODS["tallrec"].config["lora"] is True
    assert all(METHODS[m].uses_value_head for m in ("flexrec-ppo", "flexrec-ppo-noncausal", "ppo"))
    assert not METHODS["flexrec-rawcritic"].uncertainty and METHODS["flexrec-rawcritic"].gain_signal == "raw-critic"


def test_registry_and_trainer_table_agree_with_methods_both_ways() -> None:
    trained = {name: e for name, e in REGISTRY.items() if e.kind is RankerKind.TRAINED}
    policy = {name: e for name, e in TRAINERS.items() if e.target.endswith("train_policy")}
    assert set(trained) == set(METHODS) == set(policy)
    for name, method in METHODS.items():
        assert trained[name].options["method"] == name == policy[name].options["method"]
        assert trained[name].description == method.description == policy[name].description
    assert set(TRAINERS) - set(policy) == {"critic", "bert4rec"}


def test_every_table7_and_table9_row_is_a_dense_method() -> None:
    dense = {"sft-dense", "ppo-dense", "rec-r1-dense", "rank-grpo-dense", "flexrec-dense",
             "flexrec-noncausal-dense", "flexrec-independent-dense", "flexrec-ppo-dense",
             "flexrec-ppo-noncausal-dense", "flexrec-ppo-independent-dense"}
    assert dense <= set(METHODS)
    for name in dense:
        m, base = METHODS[name], METHODS[name.removesuffix("-dense")]
        assert m.dense_data and m.gain_signal == "dense" and not m.uncertainty
        assert (m.item_reward, m.advantage, m.algorithm, m.sft_warmup_steps) == (
            base.item_reward, base.advantage, base.algorithm, base.sft_warmup_steps)


def test_unknown_method_suggests_close_names() -> None:
    with pytest.raises(FlexBenchError, match="flexrec"):
        get_method("flexrek")


def test_config_defaults_follow_spec_and_validate() -> None:
    cfg = TrainConfig()
    assert (cfg.clip_eps, cfg.kl_coef, cfg.entropy_coef, cfg.lr) == (0.2, 0.01, 0.005, 1e-6)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets) == (8, 16, 0.05, ("q_proj", "v_proj"))
    assert not cfg.lora
    with pytest.raises(FlexBenchError, match="group_size"):
        TrainConfig(group_size=1)
    with pytest.raises(FlexBenchError, match="mini_batches"):
        TrainConfig(prompts_per_step=1, group_size=4, mini_batches=3)
    with pytest.raises(FlexBenchError, match="Did you mean 'kl_coef'"):
        TrainConfig.from_options({"kl_coeff": 0.1})


def test_paper_preset_is_qwen_with_spec_group_size() -> None:
    paper = TrainConfig.from_options({"preset": "paper"})
    assert paper.model == "Qwen/Qwen2.5-3B-Instruct" and paper.group_size == 8 and paper.lr == 1e-6
    assert load_preset("cpu")["model"] == "smollm2"
    assert TrainConfig.from_options({"preset": "paper", "steps": 7}).steps == 7


@pytest.mark.parametrize(("method", "warmup"), [("flexrec", 0), ("rank-grpo", 0), ("flexrec-ppo", 0),
                                                ("rec-r1", 25), ("rec-r1-dense", 25)])
def test_a_preset_leaves_each_methods_own_warmup(method: str, warmup: int, tmp_path: Path) -> None:
    request = TrainRequest(method=method, dataset="kuairec", needs=("interest",), out_dir=tmp_path,
                           options={"preset": "paper"})
    assert build_config(METHODS[method], request).sft_warmup_steps == warmup
    named = TrainRequest(method=method, dataset="kuairec", needs=("interest",), out_dir=tmp_path,
                         options={"preset": "paper", "sft_warmup_steps": 3})
    assert build_config(METHODS[method], named).sft_warmup_steps == 3


@pytest.mark.parametrize(("options", "expected"), [
    ({"lr": "1e-6"}, {"lr": 1e-6}), ({"lr": 1e-6}, {"lr": 1e-6}), ({"steps": "7"}, {"steps": 7}),
    ({"reward_cutoff": "null"}, {"reward_cutoff": None}), ({"reward_cutoff": 10}, {"reward_cutoff": 10}),
    ({"constrained": "false"}, {"constrained": False}), ({"lora_targets": "q_proj,k_proj"},
                                                         {"lora_targets": ("q_proj", "k_proj")}),
    ({"uncertainty_clip": [0.5, 2]}, {"uncertainty_clip": (0.5, 2.0)}), ({"precision": "bf16"}, {"precision": "bf16"}),
])
def test_options_are_converted_by_the_field_types(options: dict, expected: dict) -> None:
    cfg = TrainConfig.from_options(options)
    assert {k: getattr(cfg, k) for k in expected} == expected


@pytest.mark.parametrize(("options", "message"), [
    ({"lr": ".inf"}, "lr must be a finite number"), ({"lr": True}, "lr must be a finite number"),
    ({"kl_coef": ".nan"}, "kl_coef must be a finite number"), ({"steps": 2.7}, "steps must be an integer"),
    ({"steps": "many"}, "steps must be an integer"), ({"constrained": 3}, "constrained must be true or false"),
    ({"precision": "fp8"}, "precision must be one of auto, no, bf16"), ({"model": 3}, "model must be a string"),
    ({"uncertainty_clip": [1]}, "uncertainty_clip must be a list of 2 values"),
    ({"methods": {"rec-r1": 3}}, "'methods' must map method names"),
])
def test_bad_option_values_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(FlexBenchError, match=message):
        TrainConfig.from_options(options)


def _group(texts: list[str]) -> tuple[list, list]:
    cands = TOY_IDS
    gains, var = ToyGains().candidate_gains(toy_instances(1)[0], "interest")
    parsed = [parse_ranking(t, cands) for t in texts]
    rows = [reward_row(p, cands, gains, var, np.random.default_rng(i)) for i, p in enumerate(parsed)]
    return rows, list(gains)


def _answer(order: list[str]) -> str:
    labels = label_map(TOY_IDS)
    return "".join(format_entry(labels[c]) for c in order)


def test_flexrec_ranks_credit_by_causal_swap_and_penalises_invalid_entries() -> None:
    rows, gains = _group([_answer(["c0", "c1", "c2", "c3"]), _answer(["c2", "c0", "c1", "c3"]) + "[99]\n",
                          _answer(["c3", "c2", "c1", "c0"])])
    credit = group_credit(rows, np.array(gains), get_method("flexrec"))
    best, mixed, worst = credit.entry_adv
    assert best[0] > 0 > worst[0]                   # c0 first is credited, last-first is blamed
    assert mixed[4] <= min(a.min() for a in (best, mixed[:4], worst)) + 1e-9  # invalid <= worst valid
    assert credit.seq_adv[0] > credit.seq_adv[1] > credit.seq_adv[2]
    # uncertainty weights: rollouts placing the uncertain c1 high are down-weighted
    assert credit.weights[0] < credit.weights[2]


def test_sequence_and_rank_methods_differ_only_in_credit() -> None:
    rows, gains = _group([_answer(["c0", "c1", "c2", "c3"]), _answer(["c1", "c0", "c3", "c2"])])
    seq = group_credit(rows, np.array(gains), get_method("rec-r1"))
    np.testing.assert_allclose(seq.entry_adv[0], seq.seq_adv[0])       # one advantage per sequence
    rank = group_credit(rows, np.array(gains), get_method("rank-grpo"))
    assert rank.entry_adv[0][0] > 0 > rank.entry_adv[1][0]
    np.testing.assert_allclose(rank.seq_reward, seq.seq_reward)
    ppo = group_credit(rows, np.array(gains), get_method("flexrec-ppo"))
    assert ppo.entry_reward[0][0] > 0 and np.allclose(ppo.final_reward, [0.1, 0.1])  # format term only


def test_item_tokens_receive_item_advantages_and_others_the_sequence_advantage(smol_tokenizer) -> None:  # type: ignore[no-untyped-def]
    inst = toy_instances(1)[0]
    g, v = ToyGains().candidate_gains(inst, "interest")
    task = PromptTask(0, inst, TOY_NEED, g, v)
    texts = ["Sure!\n" + _answer(["c0", "c1", "c2", "c3"]), "Hmm\n" + _answer(["c3", "c2", "c1", "c0"])]
    completions = [smol_tokenizer(t, add_special_tokens=False)["input_ids"] + [smol_tokenizer.eos_token_id]
                   for t in texts]
    cfg = TrainConfig(model="tiny", seed=0)
    rollouts = credit_rollouts(task, 0, [1, 2, 3], completions, smol_tokenizer, get_method("flexrec"), cfg, 0)
    for r, ids in zip(rollouts, completions, strict=True):
        text, offsets = decode_with_offsets(smol_tokenizer, ids)
        parsed = parse_ranking(text, inst.candidate_ids)
        for t, (start, end) in enumerate(offsets):
            inside = [m for m, e in enumerate(parsed.entries) if min(end, e.span[1]) > max(start, e.span[0])]
            if not inside:  # "Sure!", newlines between entries, EOS
                assert r.advantages[t] == pytest.approx(r.advantages[-1])
        assert len(r.advantages) == len(ids) and r.n_valid == 4 and r.parsed
    # the first item token of the good rollout carries a positive item advantage, the bad one a negative
    first = [next(t for t, (s, e) in enumerate(decode_with_offsets(smol_tokenizer, ids)[1]) if e > s and
                  decode_with_offsets(smol_tokenizer, ids)[0][s:e].strip().startswith("["))
             for ids in completions]
    assert rollouts[0].advantages[first[0]] > 0 > rollouts[1].advantages[first[1]]


def test_task_order_is_deterministic_and_joint_training_mixes_needs() -> None:
    from flexbench.types import NeedSpec

    other = NeedSpec("novelty", "Explore", "New topics first.")
    gains = {TOY_NEED.name: ToyGains(), other.name: ToyGains()}
    a = TaskSampler(toy_instances(5), [TOY_NEED, other], gains, seed=3)
    b = TaskSampler(toy_instances(5), [TOY_NEED, other], gains, seed=3)
    seq_a = [(t.instance.instance_id, t.need.name) for t in a.tasks(0, 20)]
    assert seq_a == [(t.instance.instance_id, t.need.name) for t in b.tasks(0, 20)]
    assert {n for _, n in seq_a} == {"interest", "novelty"}
    # every epoch visits every instance once
    assert sorted(i for i, _ in seq_a[:5]) == sorted(x.instance_id for x in toy_instances(5))
    assert seq_a[7:12] == [(t.instance.instance_id, t.need.name) for t in b.tasks(7, 5)]


def test_prompt_options_reach_build_prompt_and_reason_needs_free_decoding() -> None:
    cfg = TrainConfig.from_options({"prompt_mode": "reason", "constrained": False, "prompt_item_chars": 80})
    assert cfg.prompt_options == {"mode": "reason", "max_item_chars": 80}
    assert TrainConfig().prompt_options == {"mode": "ids", "max_item_chars": 300}
    with pytest.raises(FlexBenchError, match="prompt_mode=reason needs free decoding"):
        TrainConfig.from_options({"prompt_mode": "reason"})
    with pytest.raises(FlexBenchError, match="prompt_item_chars must be >= 20"):
        TrainConfig.from_options({"prompt_item_chars": 5})
