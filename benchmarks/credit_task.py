"""The synthetic ranking task of the credit-assignment testbed (``benchmarks/bench_credit.py``).

A small world that a tiny causal LM can learn in minutes, written in FlexBench's
prepared layout (:func:`flexbench.prepared.write_prepared`) so that the real gain
providers, critic and KNN read it like any dataset.

World (all seeded). A catalogue of ``n_items`` items, each with a topic ``t_i``
(one of :data:`TOPICS`) and a grade ``q_i in 1..5``, and one *slate* of ``k``
further items (two per topic) that every instance ranks. A user prefers one
topic; their history is ``history_len`` catalogue items, each of the preferred
topic with probability ``history_on_topic`` and of a random topic otherwise. The engagement of user ``u`` with item
``i`` (the interest gain) is::

    v(u, i) = max(0, grade_weight * (q_i - 1) / 4 + topic_weight * share_u(t_i) + e_ui)

with ``share_u(t)`` the fraction of ``u``'s history items of topic ``t`` and
``e_ui ~ N(0, s_t^2)`` a user-item idiosyncrasy with a topic-dependent scale
``s_t = noise * NOISE_SCALE[t]``. The first two terms are readable from the
prompt (an item's text is ``"<topic> q<grade>"``, shown beside its label and in
the history lines); ``e`` is not: it is the part of a label that neither the
policy nor the critic can predict, so relative to what is learnable an observed
label is a noisy one, and the critic's error (and its variance) is largest on
the topics with the largest ``s_t``.

Why one slate: labels are a function of the candidate set
(:func:`flexbench.llm.labels.label_map`), so with one slate a label always names
the same item and the policy only has to learn which items suit which history
(one attention hop). With a fresh candidate set per instance the model must
first learn associative recall (find the label whose line shows a good grade
and copy it), which a two-layer model at this size had not learned after 300
supervised steps (measured); that would test the architecture, not the credit.

Observed labels (what training sees): for a training user each slate item is
observed with a probability that depends on its topic, with its value ``v`` (the
label itself, as KuaiRec's observed watch ratios are): ``observed`` on average
(5 %), but the *rare topic* (``rare_topic``, the noisiest one) is observed
``rare_factor`` times as often as the others, so the imputation has to
extrapolate there, where its error is largest. These rows and the history rows
(engagement: ``v`` of the history item with the *same* topic-dependent
idiosyncrasy as a label, so a critic fitted on them learns the label noise, not
a smaller one) are the ``train`` interactions: the critic
(:mod:`flexbench.train.signal.critic`, or a deep ensemble of them) and the KNN
imputers learn from them and impute the other slate items. Validation and test
labels are ``v`` of their users, drawn the same way.

Item embeddings (the critic's fixed item tower) carry the topic and the grade
plus noise dimensions, like a retriever's embedding would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TOPICS = ("red", "blue", "green", "gold")
NOISE_SCALE = (0.5, 1.0, 1.5, 2.0)
DATASET = "credit-toy"
NEED = "interest"
_PIECES = r"\[\d\]| ?(?:" + "|".join(TOPICS) + r") q\d|\d+(?:\.\d+)?|\n"


@dataclass(frozen=True)
class TaskConfig:
    """Size, sparsity and noise of the synthetic world (module docstring)."""

    n_train: int = 300
    n_valid: int = 64
    n_test: int = 64
    n_items: int = 120
    k: int = 8
    history_len: int = 4
    history_on_topic: float = 1.0
    topic_weight: float = 3.0
    grade_weight: float = 0.5
    observed: float = 0.05
    rare_topic: int = 3
    rare_factor: float = 0.2
    noise: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 4 <= self.k <= 9 or self.k % 2:
            raise ValueError(f"k={self.k}: the slate has two items per topic and one-digit labels (4, 6 or 8)")
        if not 0 < self.observed <= 1 or self.noise < 0:
            raise ValueError("observed must be in (0, 1] and noise >= 0")
        if not 0 <= self.rare_topic < len(TOPICS) or not 0 < self.rare_factor <= 1:
            raise ValueError(f"rare_topic must index {TOPICS} and rare_factor be in (0, 1]")
        if observation_probs(self).max() > 1:
            raise ValueError("observed is too large for rare_factor: a topic's probability exceeds 1")
        if self.n_items < len(TOPICS) or self.history_len < 1:
            raise ValueError("n_items must cover every topic and history_len must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)


def observation_probs(cfg: TaskConfig) -> np.ndarray:
    """Per topic, the probability that a training user's slate item of that topic is observed.

    ``c`` for every topic but the rare one, ``c * rare_factor`` for it, with ``c``
    chosen so that the mean over topics is ``observed``.
    """
    n = len(TOPICS)
    c = cfg.observed * n / (n - 1 + cfg.rare_factor)
    probs = np.full(n, c)
    probs[cfg.rare_topic] = c * cfg.rare_factor
    return probs


def item_text(topic: int, grade: int) -> str:
    """What a prompt shows for an item: ``"blue q4"``."""
    return f"{TOPICS[topic]} q{grade}"


def _embeddings(topic: np.ndarray, grade: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    one_hot = np.eye(len(TOPICS))[topic]
    emb = np.concatenate([one_hot, ((grade - 3) / 2.0)[:, None], 0.3 * rng.normal(size=(len(topic), 11))], 1)
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def _world(cfg: TaskConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Topics and grades of the catalogue (rows ``0 .. n_items-1``) and the slate (the last ``k`` rows)."""
    topic = np.concatenate([rng.integers(0, len(TOPICS), cfg.n_items),
                            np.repeat(np.arange(len(TOPICS)), 2)[: cfg.k]])
    slate_grades = rng.permutation(np.resize(np.arange(1, 6), cfg.k))
    grade = np.concatenate([rng.integers(1, 6, cfg.n_items), slate_grades])
    return topic, grade


def write_task(root: Path, cfg: TaskConfig) -> Any:
    """Generate the world of ``cfg`` and write it to ``root``; returns the :class:`PreparedDataset`."""
    from flexbench.prepared import instances_frame, labels_frame, write_prepared
    from flexbench.types import Candidate, HistoryItem, Instance, NeedLabels, Split
    from needs.labels import relevant_set

    rng = np.random.default_rng(cfg.seed)
    topic, grade = _world(cfg, rng)
    ids = [f"t{j:04d}" for j in range(len(topic))]
    texts = [item_text(t, g) for t, g in zip(topic, grade, strict=True)]
    items = pd.DataFrame({"item_id": ids, "text": texts, "topics": [[TOPICS[t]] for t in topic]})
    slate = np.arange(cfg.n_items, len(topic))
    by_topic = [np.flatnonzero(topic[: cfg.n_items] == t) for t in range(len(TOPICS))]
    splits = [Split.TRAIN] * cfg.n_train + [Split.VALID] * cfg.n_valid + [Split.TEST] * cfg.n_test
    instances, labels, rows = [], [], []
    for u, split in enumerate(splits):
        pref = int(rng.integers(len(TOPICS)))
        hist_topics = np.where(rng.random(cfg.history_len) < cfg.history_on_topic, pref,
                               rng.integers(0, len(TOPICS), cfg.history_len))
        hist = [int(rng.choice(by_topic[t])) if len(by_topic[t]) else int(rng.integers(cfg.n_items))
                for t in hist_topics]
        share = np.bincount(topic[hist], minlength=len(TOPICS)) / len(hist)

        def v(items: np.ndarray, share: np.ndarray = share) -> np.ndarray:
            return cfg.grade_weight * (grade[items] - 1) / 4.0 + cfg.topic_weight * share[topic[items]]

        t0 = 1_700_000_000 + 3_600 * u
        hist_sd = cfg.noise * np.asarray(NOISE_SCALE)[topic[hist]]
        eng = np.clip(v(np.asarray(hist)) + hist_sd * rng.normal(size=len(hist)), 0, None)
        history = tuple(HistoryItem(ids[j], texts[j], float(e), t0 + 60 * n, (TOPICS[topic[j]],))
                        for n, (j, e) in enumerate(zip(hist, eng, strict=True)))
        user = f"u{u:04d}"
        rows += [(user, h.item_id, h.engagement, h.timestamp, split.value) for h in history]
        sd = cfg.noise * np.asarray(NOISE_SCALE)[topic[slate]]
        gains = np.clip(v(slate) + sd * rng.normal(size=cfg.k), 0, None)
        if split is Split.TRAIN:
            seen = rng.random(cfg.k) < observation_probs(cfg)[topic[slate]]
            stamp = t0 + 60 * (cfg.history_len + 1)
            rows += [(user, ids[j], float(gains[n]), stamp + n, split.value) for n, j in enumerate(slate) if seen[n]]
        cand_ids = tuple(ids[j] for j in slate)
        inst = Instance(f"credit-{u:04d}", DATASET, split,
                        tuple(Candidate(ids[j], texts[j], (TOPICS[topic[j]],)) for j in slate),
                        user_id=user, history=history, query_time=t0 + 60 * cfg.history_len)
        instances.append(inst)
        g = [float(x) for x in gains]
        labels.append(NeedLabels(inst.instance_id, NEED, cand_ids, tuple(g), relevant_set(cand_ids, g)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "value", "timestamp", "split"])
    return write_prepared(root, dataset=DATASET, variant="sparse", needs=(NEED,),
                          instances=instances_frame(instances), items=items, labels=labels_frame(labels),
                          interactions=frame, embeddings=_embeddings(topic, grade, rng),
                          config={"generator": "benchmarks/credit_task.py", **cfg.to_dict()})


def observed_density(dataset: Any) -> float:
    """Share of training (user, candidate) pairs whose gain is observed."""
    train = dataset.instances("train")
    seen = dataset.interactions("train").groupby("user_id")["item_id"].agg(set).to_dict()
    hits = [c in seen.get(x.user_id, set()) for x in train for c in x.candidate_ids]
    return float(np.mean(hits))


def reference_scores(dataset: Any, cfg: TaskConfig, split: str, n: int, draws: int = 200) -> dict[str, float]:
    """NDCG@5 of three fixed rankers on the first ``n`` instances of ``split``, to read the testbed's figures by.

    * ``random``: a uniformly random order (mean of ``draws`` seeded permutations);
    * ``fixed order``: the best ranking that ignores the user, the slate sorted by
      the mean training gain of each item (what a policy that does not read the
      history can reach);
    * ``readable oracle``: the slate sorted by the readable part of the gain,
      ``grade_weight (q_i - 1) / 4 + topic_weight share_u(t_i)`` (module
      docstring): the ceiling of a policy that reads the prompt perfectly; it
      stays below 1 because the idiosyncrasy ``e_ui`` is not in the prompt.
    """
    from flexbench.metrics import ideal_order, ndcg_at

    xs = dataset.instances(split, limit=n)
    labels = dataset.labels(NEED, split)
    true = np.array([labels[x.instance_id].gains for x in xs])

    def score(g: np.ndarray) -> float:
        order = np.argsort(-g, axis=1, kind="stable")
        return float(ndcg_at(np.take_along_axis(true, order, 1), ideal_order(true), 5).mean())

    def readable(x: Any) -> list[float]:
        share = {t: sum(h.topics[0] == t for h in x.history) / len(x.history) for t in TOPICS}
        return [cfg.grade_weight * (int(c.text.split(" q")[1]) - 1) / 4 + cfg.topic_weight * share[c.topics[0]]
                for c in x.candidates]

    train = dataset.labels(NEED, "train")
    mean_gain = np.mean([train[x.instance_id].gains for x in dataset.instances("train")], axis=0)
    rng = np.random.default_rng(0)
    return {"random": float(np.mean([score(rng.random(true.shape)) for _ in range(draws)])),
            "fixed order": score(np.tile(mean_gain, (len(xs), 1))),
            "readable oracle": score(np.array([readable(x) for x in xs]))}


def train_tokenizer(dataset: Any, vocab_size: int = 1500) -> Any:
    """A byte-level BPE tokenizer trained on the task's own prompts and answers (no download).

    The pre-tokenizer isolates what carries information (labels ``[3]``, topic
    words, grades ``q4``, numbers, line breaks) and leaves the fixed prompt text
    between them whole, so BPE folds the boilerplate into a few tokens (a prompt
    is about 80 tokens instead of 370) while a label is one token, the same in
    the candidate list and in the answer (an answer entry is ``[3]`` + ``\\n``).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from flexbench.llm.labels import format_entry
    from flexbench.llm.prompts import build_prompt
    from flexbench.vocabulary import get_need

    need = get_need(NEED)
    sample = dataset.instances("train", limit=200)
    corpus = [build_prompt(x, need, seed=s).text for x in sample for s in range(2)]
    corpus += ["".join(format_entry(str(n)) for n in np.random.default_rng(s).permutation(range(1, 10)))
               for s in range(400)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PIECES), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|pad|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>")
    fast.padding_side = "left"
    return fast


def tiny_model(tokenizer: Any, *, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0) -> Any:
    """A random LLaMA over ``tokenizer``'s vocabulary, built from a config (deterministic for ``seed``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).float()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
