"""A small synthetic world with learnable sequential structure, shared by the sample writers.

Items belong to topics and have a popularity (Zipf), a quality, and three fixed
*successor* items (two of the same topic, one of the next topic on a global
topic ring). Users have a sparse taste over topics (Dirichlet) and drift
through topics with a Markov chain: they stay with probability ``stay``, else
move along the ring or towards their taste. Each step a user

1. with probability ``p_successor`` consumes the strongest unconsumed
   successor of their previous item (item-to-item transitions),
2. else with probability ``p_state`` a uniformly drawn item of their current topic,
3. else an item drawn by popularity^0.5 (feed noise, usually off-topic).

An event is *in state* when its item's topic is the current topic. Engagement
(watch ratio, rating) grows with being in state, with the user's taste for the
topic and with item quality; with the weights ``(w_s, w_t, w_q, w_e)`` of
``WorldConfig.engagement`` (default ``(1.1, 0.9, 0.4, 0.5)``):

    z = w_s * in_state + w_t * taste(u, topic) + w_q * quality + w_e * eps,  eps ~ N(0, 1)

so that history-aware methods (sequence models, STAR, LLMs) can beat
popularity and random on the interest need, while popularity still carries
some signal through quality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WorldConfig:
    """Size and dynamics of a synthetic world."""

    n_users: int
    n_items: int
    n_topics: int
    seed: int = 0
    stay: float = 0.8
    p_successor: float = 0.45
    p_state: float = 0.35
    taste_concentration: float = 0.25
    ring: float = 0.3
    pop_exponent: float = 0.6
    state_pop_power: float = 0.0
    noise_pop_power: float = 0.5
    engagement: tuple[float, float, float, float] = (1.1, 0.9, 0.4, 0.5)
    topic_weights: tuple[float, ...] | None = None
    p_second: float = 0.3
    tag_counts: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if min(self.n_users, self.n_items, self.n_topics) < 1:
            raise ValueError("n_users, n_items and n_topics must be positive")
        if self.n_items < 4 * self.n_topics:
            raise ValueError(f"n_items ({self.n_items}) must be at least 4 * n_topics ({self.n_topics})")
        if not 0 <= self.p_successor + self.p_state <= 1:
            raise ValueError("p_successor + p_state must lie in [0, 1]")
        if self.topic_weights is not None and (len(self.topic_weights) != self.n_topics
                                               or min(self.topic_weights) <= 0):
            raise ValueError(f"topic_weights must hold {self.n_topics} positive weights")
        if not 0 <= self.p_second <= 1:
            raise ValueError(f"p_second must lie in [0, 1], got {self.p_second}")
        if self.tag_counts is not None and (not 1 <= len(self.tag_counts) <= self.n_topics
                                            or min(self.tag_counts) < 0 or abs(sum(self.tag_counts) - 1) > 1e-9):
            raise ValueError("tag_counts must be probabilities of 1, 2, ... topics per item, summing to 1")

    def extra_probs(self) -> np.ndarray:
        """Probabilities of 0, 1, 2, ... topics beyond the primary one (``tag_counts`` or ``p_second``)."""
        if self.tag_counts is None:
            return np.array([1 - self.p_second, self.p_second])
        return np.asarray(self.tag_counts, dtype=np.float64)


@dataclass(frozen=True)
class World:
    """Item and user parameters of a synthetic world (see module docstring)."""

    config: WorldConfig
    topic: np.ndarray          # [n_items] primary topic
    extra_topics: np.ndarray   # [n_items, E] further topics, -1 padded
    popularity: np.ndarray     # [n_items] probabilities, sum 1
    quality: np.ndarray        # [n_items] standard-normal-ish
    successors: np.ndarray     # [n_items, 3] item indices, strongest first
    taste: np.ndarray          # [n_users, n_topics] probabilities

    @property
    def second_topic(self) -> np.ndarray:
        """``[n_items]`` the first extra topic or -1."""
        return self.extra_topics[:, 0]

    def topics_of(self, item: int) -> list[int]:
        """All topics of ``item``, primary first."""
        return [int(self.topic[item])] + [int(t) for t in self.extra_topics[item] if t >= 0]

    def taste_score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``log(T * taste)`` of the item's topic, clipped to [-3, 1.5] and scaled to ~[-1, 0.5]."""
        t = self.config.n_topics * self.taste[users, self.topic[items]]
        return np.clip(np.log(t + 1e-3), -3.0, 1.5) / 3.0

    def engagement(self, users: np.ndarray, items: np.ndarray, in_state: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
        """Latent engagement ``z`` (module docstring) for each event."""
        w_s, w_t, w_q, w_e = self.config.engagement
        return (w_s * in_state + w_t * self.taste_score(users, items)
                + w_q * self.quality[items] + w_e * rng.standard_normal(len(items)))


def make_world(cfg: WorldConfig) -> World:
    """Draw a world from ``cfg`` (deterministic for ``cfg.seed``)."""
    rng = np.random.default_rng([cfg.seed, 101])
    n, t = cfg.n_items, cfg.n_topics
    topic, second = _topics(cfg, rng)
    ranks = rng.permutation(n) + 1
    popularity = 1.0 / ranks ** cfg.pop_exponent
    popularity /= popularity.sum()
    quality = 0.6 * (np.log(popularity) - np.log(popularity).mean()) / np.log(popularity).std() \
        + 0.8 * rng.standard_normal(n)
    successors = np.empty((n, 3), dtype=np.int64)
    by_topic = [np.flatnonzero(topic == k) for k in range(t)]
    for i in range(n):
        same = by_topic[topic[i]][by_topic[topic[i]] != i]
        nxt = by_topic[(topic[i] + 1) % t]
        pick = rng.choice(same, 2, replace=len(same) < 2)
        successors[i] = (*pick, rng.choice(nxt))
    taste = rng.dirichlet(np.full(t, cfg.taste_concentration), cfg.n_users)
    return World(cfg, topic, second, popularity, quality, successors, taste)


def _topics(cfg: WorldConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Primary topic (every topic at least once) and further topics (``[n_items, E]``, -1 padded).

    Primary topics follow ``topic_weights`` (uniform without). The number of further topics
    follows :meth:`WorldConfig.extra_probs`; they are distinct, drawn with the same weights
    renormalised without the topics already held, as genres in MovieLens and ``feat`` tags in
    KuaiRec.
    """
    n, t = cfg.n_items, cfg.n_topics
    w = np.ones(t) if cfg.topic_weights is None else np.asarray(cfg.topic_weights, dtype=np.float64)
    topic = np.concatenate([np.arange(t), rng.choice(t, n - t, p=w / w.sum())])
    rng.shuffle(topic)
    probs = cfg.extra_probs()
    n_extra = rng.choice(len(probs), n, p=probs)
    extra = np.full((n, max(1, len(probs) - 1)), -1, dtype=np.int64)
    for i in np.flatnonzero(n_extra):
        other = w.copy()
        other[topic[i]] = 0.0
        extra[i, :n_extra[i]] = rng.choice(t, n_extra[i], replace=False, p=other / other.sum())
    return topic, extra


def _norm(p: np.ndarray) -> np.ndarray:
    return p / p.sum()


def user_sequence(world: World, user: int, n_events: int, rng: np.random.Generator,
                  items: np.ndarray | None = None,
                  noise_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Items consumed by ``user`` in order (no repeats) and whether each event was in state.

    ``items`` restricts the catalogue (default all items); ``n_events`` is capped
    by its size. ``noise_weights`` (``[n_events, n_items]``) replaces
    ``popularity ** noise_pop_power`` as the weights of step ``k``'s feed pick
    (3. in the module docstring), e.g. to follow each day's trending items.
    This is a Python loop over events: for the ``small`` samples only.
    """
    cfg = world.config
    pool = np.arange(cfg.n_items) if items is None else np.asarray(items)
    allowed = np.zeros(cfg.n_items, dtype=bool)
    allowed[pool] = True
    n_events = min(n_events, len(pool))
    state = int(rng.choice(cfg.n_topics, p=world.taste[user]))
    ring_or_taste = world.taste[user]
    out, flags, prev = np.empty(n_events, np.int64), np.empty(n_events, bool), -1
    for step in range(n_events):
        if rng.random() > cfg.stay:
            state = (state + 1) % cfg.n_topics if rng.random() < cfg.ring else \
                int(rng.choice(cfg.n_topics, p=ring_or_taste))
        r = rng.random()
        pick = -1
        if prev >= 0 and r < cfg.p_successor:
            free = [s for s in world.successors[prev] if allowed[s]]
            pick = free[0] if free else -1
        if pick < 0 and r < cfg.p_successor + cfg.p_state:
            cands = np.flatnonzero(allowed & (world.topic == state))
            if len(cands):
                pick = int(rng.choice(cands, p=_norm(world.popularity[cands] ** cfg.state_pop_power)))
        if pick < 0:
            cands = np.flatnonzero(allowed)
            weight = world.popularity[cands] ** cfg.noise_pop_power if noise_weights is None \
                else noise_weights[step, cands]
            pick = int(rng.choice(cands, p=_norm(weight)))
        flags[step] = world.topic[pick] == state
        out[step] = pick
        allowed[pick] = False
        prev = pick
    return out, flags


def event_times(n_events: int, rng: np.random.Generator, start: int, days: int,
                session_gap: float = 40.0) -> np.ndarray:
    """Sorted Unix-second times with daily activity: sessions on random days, peaked at noon and evening."""
    n_sessions = max(1, min(n_events, int(rng.integers(2, 3 + days))))
    day = np.sort(rng.integers(0, days, n_sessions))
    hour = np.where(rng.random(n_sessions) < 0.35, rng.normal(12.5, 1.5, n_sessions),
                    rng.normal(20.5, 1.8, n_sessions)).clip(0.2, 23.3)
    starts = start + day * 86_400 + (hour * 3600).astype(np.int64)
    session = np.sort(rng.integers(0, n_sessions, n_events))
    offsets = np.zeros(n_events)
    for s in range(n_sessions):
        idx = np.flatnonzero(session == s)
        offsets[idx] = np.cumsum(rng.exponential(session_gap, len(idx)))
    return np.sort(starts[session] + offsets)
