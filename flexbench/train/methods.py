"""Training methods as data: one :class:`MethodSpec` per row of the paper's tables.

A method does not copy the training loop; it chooses, for the one loop in
:mod:`flexbench.train.loop`,

* ``item_reward``  — which item-level reward (SPEC 6: causal swap, non-causal
  swap, independent contribution; SPEC 5: Rank-GRPO's rank-level reward), or
  none (sequence-level GRPO);
* ``advantage``    — how rewards become per-token advantages: FlexRec's pooled
  item-level GRPO with sequence advantages on non-item tokens, Rank-GRPO's
  per-rank normalisation, plain sequence GRPO, or PPO's GAE over a value head;
* ``uncertainty``  — whether rollout advantages are scaled by the critic's
  inverse-variance weights, with a weighted baseline so that a group's
  advantages still sum to zero (SPEC 6), and ``weight_scope`` which ones (all,
  or the sequence-level advantage only: ``flexrec-seqweight``);
* ``gain_signal``  — where training-time gains come from
  (:func:`flexbench.train.signal.gains.make_gain_provider`);
* ``sft_warmup_steps`` and ``algorithm`` (RL after warm-up, or SFT only);
* ``config`` — config overrides the method needs (TALLRec: LoRA, lr 1e-4).

``label`` is the ranker label of the method's results (docs/INTERFACES.md) and
the first component of its checkpoint directory.

| method | item reward | advantage | uncertainty | gains | warm-up |
|---|---|---|---|---|---|
| flexrec | causal swap | item GRPO + seq | yes | observed+critic | 0 |
| flexrec-noncausal | non-causal swap | item GRPO + seq | yes | observed+critic | 0 |
| flexrec-independent | independent | item GRPO + seq | yes | observed+critic | 0 |
| flexrec-seqweight | causal swap | item GRPO + seq | sequence only | observed+critic | 0 |
| flexrec-rawcritic | causal swap | item GRPO + seq | no | raw-critic | 0 |
| flexrec-userknn | causal swap | item GRPO + seq | no | user-knn | 0 |
| flexrec-itemknn | causal swap | item GRPO + seq | no | item-knn | 0 |
| flexrec-observed | causal swap | item GRPO + seq | no | observed (0 elsewhere) | 0 |
| rec-r1 | — | sequence GRPO | no | observed+critic | 25 SFT |
| rank-grpo | rank-level | per-rank GRPO, rank ratio | no | observed+critic | 0 |
| tallrec | — | LoRA SFT on the optimal list | — | observed+critic | — |
| sft | — | full SFT on the optimal list | — | observed+critic | — |
| flexrec-ppo | causal swap | PPO (GAE) | yes | observed+critic | 0 |
| flexrec-ppo-noncausal | non-causal swap | PPO (GAE) | yes | observed+critic | 0 |
| flexrec-ppo-independent | independent | PPO (GAE) | yes | observed+critic | 0 |
| ppo | — | PPO (GAE), sequence reward | no | observed+critic | 0 |

``flexrec-rawcritic`` has flexrec's gains (observed labels, the critic's mean
elsewhere) without the uncertainty weights (variance 0, SPEC: "raw critic (no
weighting)"); the KNN rows replace the critic by CF imputation
(no variance). Each of flexrec, its reward ablations, rec-r1, rank-grpo, sft
and the PPO rows also has a ``<name>-dense`` twin (:func:`dense_variant`, paper
Tables 7 and 9) trained on the fully observed KuaiRec matrix
(``kuairec-dense``), where there is nothing to be uncertain about.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from flexbench.options import lookup


class ItemReward(StrEnum):
    """Item-level reward of SPEC 6 / Rank-GRPO (``none``: sequence reward only)."""

    CAUSAL = "causal"
    NONCAUSAL = "noncausal"
    INDEPENDENT = "independent"
    RANK_LEVEL = "rank-level"
    NONE = "none"


class Advantage(StrEnum):
    """How rewards become per-token advantages."""

    ITEM_GRPO = "item-grpo"      # pooled item advantages on item tokens, sequence ones elsewhere
    RANK_GRPO = "rank-grpo"      # per-rank-position normalisation across the group
    SEQUENCE_GRPO = "sequence-grpo"
    GAE = "gae"                  # PPO: token rewards, value head, GAE


class WeightScope(StrEnum):
    """Which advantages the uncertainty weights scale (SPEC 6), each with its weighted baseline."""

    ALL = "all"            # item and sequence advantages (FlexRec)
    SEQUENCE = "sequence"  # the sequence-level advantage only (the paper's literal reading)


class Algorithm(StrEnum):
    """RL (after an optional SFT warm-up) or SFT only."""

    RL = "rl"
    SFT = "sft"


class GainSignal(StrEnum):
    """Where training-time gains come from (:func:`flexbench.train.signal.gains.make_gain_provider`)."""

    OBSERVED_CRITIC = "observed+critic"  # observed sparse labels, critic mean + variance elsewhere
    RAW_CRITIC = "raw-critic"            # observed sparse labels, the critic's mean elsewhere, no variance
    USER_KNN = "user-knn"
    ITEM_KNN = "item-knn"
    OBSERVED = "observed"                # observed sparse labels, gain 0 elsewhere (no imputation)
    DENSE = "dense"                      # the fully observed labels of a dense variant
    LABELS = "labels"                    # the evaluation labels themselves (tests, toy tasks)


CRITIC_SIGNALS = frozenset({GainSignal.OBSERVED_CRITIC, GainSignal.RAW_CRITIC})
IMPUTING_SIGNALS = CRITIC_SIGNALS | {GainSignal.USER_KNN, GainSignal.ITEM_KNN}
"""Signals that impute unobserved candidates (``unrated_gains`` decides whether they do: train/config.py)."""


@dataclass(frozen=True)
class MethodSpec:
    """One training method (see the module table)."""

    name: str
    description: str
    algorithm: Algorithm = Algorithm.RL
    item_reward: ItemReward = ItemReward.CAUSAL
    advantage: Advantage = Advantage.ITEM_GRPO
    uncertainty: bool = True
    weight_scope: WeightScope = WeightScope.ALL
    gain_signal: GainSignal = GainSignal.OBSERVED_CRITIC
    sft_warmup_steps: int = 0
    dense_data: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.advantage in (Advantage.ITEM_GRPO, Advantage.RANK_GRPO) and self.item_reward is ItemReward.NONE:
            raise ValueError(f"{self.name}: {self.advantage} needs an item reward")
        if self.advantage is Advantage.RANK_GRPO and self.item_reward is not ItemReward.RANK_LEVEL:
            raise ValueError(f"{self.name}: Rank-GRPO advantages need rank-level rewards")
        if self.uncertainty and self.gain_signal not in CRITIC_SIGNALS:
            raise ValueError(f"{self.name}: uncertainty scaling needs critic variances")
        if self.uncertainty and self.advantage is Advantage.RANK_GRPO:
            raise ValueError(f"{self.name}: Rank-GRPO's per-rank advantages take no uncertainty weights")

    @property
    def label(self) -> str:
        """Ranker label of this method's results and its checkpoint directory name."""
        return self.name

    @property
    def needs_critic(self) -> bool:
        """Whether training gains come from the uncertainty-aware critic."""
        return self.gain_signal in CRITIC_SIGNALS

    @property
    def uses_value_head(self) -> bool:
        """PPO variants train a value head alongside the policy."""
        return self.advantage is Advantage.GAE


def _m(name: str, description: str, **kw: Any) -> MethodSpec:
    return MethodSpec(name, description, **kw)


def dense_variant(base: MethodSpec) -> MethodSpec:
    """``base`` trained on the fully observed KuaiRec labels (``<name>-dense``, paper Tables 7 and 9).

    Every gain is observed there, so there is no critic and nothing to be
    uncertain about: gains come from the dense labels and the uncertainty
    weights are off; everything else (reward, advantage, warm-up) is ``base``'s.
    """
    return dataclasses.replace(base, name=f"{base.name}-dense", dense_data=True, gain_signal=GainSignal.DENSE,
                               uncertainty=False, description=f"{base.description} Trained on dense KuaiRec "
                               "(every gain observed: no critic, no uncertainty weights).")


_R, _A = ItemReward, Advantage
_PLAIN = {"uncertainty": False}

_BASE: tuple[MethodSpec, ...] = (
    _m("flexrec", "FlexRec: causal swap item advantages + sequence advantages + critic uncertainty scaling."),
    _m("flexrec-noncausal", "FlexRec with the non-causal swap reward (all j != k).",
       item_reward=_R.NONCAUSAL),
    _m("flexrec-independent", "FlexRec with the independent contribution g_k d_k / IDCG.",
       item_reward=_R.INDEPENDENT),
    _m("flexrec-seqweight", "FlexRec with the uncertainty weights on the sequence-level advantage only "
       "(the paper's literal reading).", weight_scope=WeightScope.SEQUENCE),
    _m("flexrec-rawcritic", "FlexRec rewards from the raw critic mean, no uncertainty weights.",
       gain_signal=GainSignal.RAW_CRITIC, **_PLAIN),
    _m("flexrec-userknn", "FlexRec rewards imputed by User-KNN collaborative filtering.",
       gain_signal=GainSignal.USER_KNN, **_PLAIN),
    _m("flexrec-itemknn", "FlexRec rewards imputed by Item-KNN collaborative filtering.",
       gain_signal=GainSignal.ITEM_KNN, **_PLAIN),
    _m("flexrec-observed", "FlexRec on observed gains only: unobserved candidates get gain 0, no critic.",
       gain_signal=GainSignal.OBSERVED, **_PLAIN),
    _m("rec-r1", "Rec-R1: 25 SFT warm-up steps, then sequence-level GRPO (NDCG + format term).",
       item_reward=_R.NONE, advantage=_A.SEQUENCE_GRPO, sft_warmup_steps=25, **_PLAIN),
    _m("rank-grpo", "Rank-GRPO: rank-level rewards normalised per rank across rollouts.",
       item_reward=_R.RANK_LEVEL, advantage=_A.RANK_GRPO, **_PLAIN),
    _m("tallrec", "TALLRec: LoRA SFT on the optimal ranked list.", algorithm=Algorithm.SFT,
       item_reward=_R.NONE, advantage=_A.SEQUENCE_GRPO, config={"lora": True, "sft_lr": 1e-4}, **_PLAIN),
    _m("sft", "Full-parameter SFT on the optimal ranked list.", algorithm=Algorithm.SFT,
       item_reward=_R.NONE, advantage=_A.SEQUENCE_GRPO, **_PLAIN),
    _m("flexrec-ppo", "PPO (value head + GAE) on causal swap token rewards.", advantage=_A.GAE),
    _m("flexrec-ppo-noncausal", "PPO on non-causal swap token rewards.", item_reward=_R.NONCAUSAL,
       advantage=_A.GAE),
    _m("flexrec-ppo-independent", "PPO on independent-contribution token rewards.",
       item_reward=_R.INDEPENDENT, advantage=_A.GAE),
    _m("ppo", "PPO (value head + GAE) on the sequence reward at the last token.", item_reward=_R.NONE,
       advantage=_A.GAE, **_PLAIN),
)
_DENSE = ("flexrec", "flexrec-noncausal", "flexrec-independent", "rec-r1", "rank-grpo", "sft",
          "flexrec-ppo", "flexrec-ppo-noncausal", "flexrec-ppo-independent", "ppo")
"""Rows of Tables 7 and 9 (both run on KuaiRec-dense: Table 7's GRPO/CausalSwap row equals Table 9's
"GRPO (ours)" row, 0.607 / 0.636 / 0.790 / 0.336 / 0.851)."""

METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    *_BASE, *(dense_variant(m) for m in _BASE if m.name in _DENSE))}
"""The one table of trained methods: the ranker registry and the trainer table are derived from it."""


def get_method(name: str) -> MethodSpec:
    """The method ``name`` or a :class:`FlexBenchError` with close matches."""
    return lookup(METHODS, name, what="training method")
