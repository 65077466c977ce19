"""Synthetic KuaiRec 2.0 in the official layout (``KuaiRec 2.0/data/*.csv``), quirks included.

``small``: 100 users x 160 videos dense small matrix (sequences from the
Markov world of :mod:`.world`, 12 topics) and an organic big matrix of 300
users x 400 videos (about 18,000 rows: each user's own walk through the same
world, with feed picks that follow each video's popularity and a burst around
its peak day; small-matrix cells excluded as in the official release), 14 days
from 2020-07-05. The big matrix is what users chose to watch, so its sequences
carry their tastes; the small matrix shows every video to every user.
``full``: the official sizes (small matrix 1,411 x 3,327 with 4,676,570 rows;
big matrix 7,176 x 10,728 with 12,530,806 rows; 62 days), drawn vectorised
(random orders instead of the Markov walk) for loading benchmarks.

Quirks reproduced: empty ``time, date, timestamp`` in ~0.5% of small-matrix
rows, ``date`` written as float there, ``feat`` lists like ``"[27, 9]"``,
unquoted ``[a,b]`` topic tags, bare carriage returns in captions, ``-124`` /
``UNKNOWN`` for missing categories, integer user features written as floats
where values are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexbench.datasets.kuairec import CAPTION_COLUMNS, USER_SCHEMA
from flexbench.datasets.synthetic._csv import write_matrix, write_rows
from flexbench.datasets.synthetic.world import World, WorldConfig, event_times, make_world, user_sequence

START = 1_593_878_400  # 2020-07-05 00:00 Beijing time
TOPICS = ("Food", "Pets", "Comedy", "Music", "Sports", "Travel", "Gaming", "Fashion", "Beauty", "Cars",
          "Science", "Dance", "Movies", "Parenting", "Fitness", "Crafts", "News", "Education", "Farming",
          "Fishing", "Anime", "Photography", "Tech", "Home", "Health", "Finance", "History", "Nature",
          "Art", "Vlog", "Military")
WORDS = {"Food": "noodles dumplings hotpot recipe street-food baking", "Pets": "cat puppy kitten dog parrot hamster",
         "Comedy": "prank sketch joke funny skit parody", "Music": "guitar cover song piano singing drums",
         "Sports": "basketball football badminton goal dunk match", "Travel": "mountain beach city road-trip hotel",
         "Gaming": "esports mobile-game speedrun boss level match", "Fashion": "outfit street-style dress shoes",
         "Beauty": "makeup skincare lipstick tutorial hairstyle", "Cars": "sports-car engine drift review SUV",
         "Science": "experiment physics chemistry space rocket", "Dance": "choreography hip-hop dance-cover ballet",
         "Movies": "trailer scene actor review cinema", "Parenting": "baby toddler family kids school",
         "Fitness": "workout gym abs yoga running", "Crafts": "handmade paper knitting woodwork diy",
         "News": "report headline interview breaking update", "Education": "lesson math english exam study",
         "Farming": "harvest rice tractor orchard village", "Fishing": "lake catch bait river reel",
         "Anime": "cosplay manga episode character drawing", "Photography": "camera lens portrait sunset drone",
         "Tech": "phone gadget unboxing laptop app", "Home": "decor kitchen cleaning storage renovation",
         "Health": "doctor sleep diet medicine tips", "Finance": "stocks savings money market budget",
         "History": "dynasty museum ancient war story", "Nature": "forest wildlife flowers waterfall bird",
         "Art": "painting calligraphy sketching sculpture ink", "Vlog": "daily life morning routine day",
         "Military": "soldier parade training army drill"}
# Tag frequencies: as skewed as KuaiRec's feat tags (a few tags cover most videos), Zipf 0.9 over the 31 tags.
TOPIC_WEIGHTS = tuple(1.0 / (r + 1) ** 0.9 for r in range(len(TOPICS)))
# P(1, 2, 3, 4 tags per video): mean 1.18, as the official item_categories.csv.
TAG_COUNTS = (0.835, 0.145, 0.017, 0.003)
# Peak-day burst of a video's traffic: weight x (1 + BURST exp(-|day - peak| / 1.5)) (_traffic_weights).
BURST = 3.0
# Share of videos whose caption and category path are about their primary feat tag (_captions).
CAPTION_ON_TAG = 0.6
# Quantile function of the small-matrix watch ratio: piecewise linear through these (p, value) knots.
# 25/50/75 % and the mean of values <= 5 are the official statistics (reference_stats.py); the 5 %,
# 90 %, 97 % and 99.5 % knots set a tail with 0.3 % of values above 5 (the official 0.49 %).
WATCH_RATIO_KNOTS = ((0.0, 0.0), (0.05, 0.13), (0.25, 0.466), (0.5, 0.766), (0.75, 1.114), (0.9, 1.5),
                     (0.97, 2.2), (0.995, 3.4), (1.0, 8.0))


# Watch ratios follow topic taste more than item quality (world default (1.1, 0.9, 0.4, 0.5)).
ENGAGEMENT = (1.1, 1.3, 0.25, 0.5)


@dataclass(frozen=True)
class KuaiRecScale:
    """Sizes of a synthetic KuaiRec."""

    small_users: int
    small_items: int
    big_users: int
    big_items: int
    big_rows: int
    small_rows: int
    topics: int
    days: int
    markov: bool


SCALES = {
    "small": KuaiRecScale(100, 160, 300, 400, 18_000, 15_940, 31, 14, True),
    "medium": KuaiRecScale(320, 320, 900, 1_000, 60_000, 101_990, 31, 21, True),
    "full": KuaiRecScale(1_411, 3_327, 7_176, 10_728, 12_530_806, 4_676_570, 31, 62, False),
}


def write_kuairec(out: Path, scale: str = "small", seed: int = 0) -> Path:
    """Write ``<out>/KuaiRec 2.0/data/`` and return that folder."""
    sc = SCALES[scale]
    folder = Path(out) / "KuaiRec 2.0" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    world = make_world(WorldConfig(sc.big_users, sc.big_items, sc.topics, seed=seed, engagement=ENGAGEMENT,
                                   topic_weights=TOPIC_WEIGHTS[:sc.topics], tag_counts=TAG_COUNTS))
    rng = np.random.default_rng([seed, 1])
    small_items = np.sort(rng.choice(sc.big_items, sc.small_items, replace=False, p=_mix(world.popularity)))
    small_users = np.sort(rng.choice(sc.big_users, sc.small_users, replace=False))
    duration = np.rint(np.exp(rng.normal(9.9, 0.6, sc.big_items))).astype(np.int64) + 3000
    _small_matrix(folder, world, sc, small_users, small_items, duration, rng)
    _big_matrix(folder, world, sc, small_users, small_items, duration, rng)
    _categories(folder, world)
    _captions(folder, world, rng)
    _user_features(folder, sc.big_users, rng)
    return folder


def _mix(p: np.ndarray) -> np.ndarray:
    q = 0.5 * p + 0.5 / len(p)
    return q / q.sum()


def _watch_ratio(z: np.ndarray) -> np.ndarray:
    """Watch ratios with the official distribution: ``Q(rank(z) / n)`` for the quantile function
    ``Q`` of :data:`WATCH_RATIO_KNOTS` (monotone in ``z``, so the world's structure is kept)."""
    p, value = np.array(WATCH_RATIO_KNOTS).T
    u = (np.argsort(np.argsort(z, kind="stable"), kind="stable") + 0.5) / len(z)
    return np.interp(u, p, value)


def _small_matrix(folder: Path, world: World, sc: KuaiRecScale, users: np.ndarray, items: np.ndarray,
                  duration: np.ndarray, rng: np.random.Generator) -> None:
    n_u, n_i = len(users), len(items)
    if sc.markov:
        seqs = [user_sequence(world, int(u), n_i, rng, items) for u in users]
        video = np.concatenate([s[0] for s in seqs])
        in_state = np.concatenate([s[1] for s in seqs])
        times = np.concatenate([event_times(n_i, rng, START, sc.days, session_gap=25.0) for _ in users])
    else:
        order = np.argsort(rng.random((n_u, n_i)), axis=1)
        video = items[order].ravel()
        in_state = rng.random(n_u * n_i) < 0.5
        times = np.sort(START + rng.random((n_u, n_i)) * sc.days * 86_400, axis=1).ravel()
    user = np.repeat(users, n_i)
    keep = np.ones(n_u * n_i, dtype=bool)
    keep[rng.choice(n_u * n_i, n_u * n_i - sc.small_rows, replace=False)] = False
    z = world.engagement(user, video, in_state, rng)
    ts_ms = np.rint(times * 1000).astype(np.int64)
    missing = rng.random(n_u * n_i) < 0.005
    write_matrix(folder / "small_matrix.csv", user[keep], video[keep], duration[video[keep]],
                 _watch_ratio(z[keep]), ts_ms[keep], missing[keep], float_date=True)


def _big_matrix(folder: Path, world: World, sc: KuaiRecScale, small_users: np.ndarray, small_items: np.ndarray,
                duration: np.ndarray, rng: np.random.Generator) -> None:
    """The platform's organic log (``markov``: each user's own Markov walk; else vectorised traffic).

    Small-matrix cells (small users x small videos) are excluded, as in the
    official release. Feed picks follow :func:`_traffic_weights` (each video's
    popularity with a burst around its peak day), which is what the trend need counts.
    """
    peak = rng.integers(0, sc.days, sc.big_items)
    activity = rng.gamma(1.5, 1.0, sc.big_users)
    is_small_user = np.zeros(sc.big_users, bool)
    is_small_user[small_users] = True
    other_items = np.setdiff1d(np.arange(sc.big_items), small_items)
    if sc.markov:
        user, item, t, in_state = _organic_walks(world, sc, activity, is_small_user, other_items, small_items,
                                                 peak, rng)
    else:
        user, item, t = _traffic(world, sc, activity, is_small_user, other_items, small_items, peak, rng)
        in_state = rng.random(len(user)) < 0.5
    order = np.lexsort((t, user))
    user, item, t, in_state = user[order], item[order], t[order], in_state[order]
    z = world.engagement(user, item, in_state, rng)
    write_matrix(folder / "big_matrix.csv", user, item, duration[item], _watch_ratio(z),
                 np.rint(t * 1000).astype(np.int64), None, float_date=False)


def _traffic_weights(world: World, small_items: np.ndarray, peak: np.ndarray, day: np.ndarray) -> np.ndarray:
    """``[len(day), n_items]``: popularity x 3 for small-matrix videos x ``(1 + BURST exp(-|day - peak| / 1.5))``."""
    boost = np.ones(len(peak))
    boost[small_items] = 3.0  # small-matrix videos are popular ones: candidates need traffic
    return world.popularity * boost * (1 + BURST * np.exp(-np.abs(day[:, None] - peak[None, :]) / 1.5))


def _organic_walks(world: World, sc: KuaiRecScale, activity: np.ndarray, is_small_user: np.ndarray,
                   other_items: np.ndarray, small_items: np.ndarray, peak: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Every big-matrix user's own walk (taste, successors, trending feed picks), ~``big_rows`` rows in all."""
    counts = np.maximum(5, rng.poisson(activity / activity.sum() * sc.big_rows))
    parts = []
    for u, n in enumerate(counts):
        times = event_times(int(n), rng, START, sc.days, session_gap=25.0)
        day = ((times - START) // 86_400).astype(np.int64)
        pool = other_items if is_small_user[u] else None
        items, flags = user_sequence(world, u, int(n), rng, pool, _traffic_weights(world, small_items, peak, day))
        parts.append((np.full(len(items), u), items, times[:len(items)], flags))
    return tuple(np.concatenate(x) for x in zip(*parts, strict=True))


def _traffic(world: World, sc: KuaiRecScale, activity: np.ndarray, is_small_user: np.ndarray,
             other_items: np.ndarray, small_items: np.ndarray, peak: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Full scale, vectorised: per day, users by activity and videos by :func:`_traffic_weights`."""
    per_day = rng.multinomial(sc.big_rows, np.full(sc.days, 1.0 / sc.days))
    parts = []
    for d, n in enumerate(per_day):
        weight = _traffic_weights(world, small_items, peak, np.array([d]))[0]
        user = rng.choice(sc.big_users, n, p=activity / activity.sum())
        item = rng.choice(sc.big_items, n, p=weight / weight.sum())
        clash = is_small_user[user] & np.isin(item, small_items)
        item[clash] = rng.choice(other_items, int(clash.sum()))
        t = START + d * 86_400 + np.clip(rng.normal(19.5, 4.0, n), 0, 23.99) * 3600
        parts.append((user, item, t))
    return tuple(np.concatenate(x) for x in zip(*parts, strict=True))


def _categories(folder: Path, world: World) -> None:
    rows = []
    for v in range(len(world.topic)):
        tags = world.topics_of(v)
        rows.append((v, "[" + ", ".join(map(str, tags)) + "]"))
    write_rows(folder / "item_categories.csv", ("video_id", "feat"), rows)


def _captions(folder: Path, world: World, rng: np.random.Generator) -> None:
    """Captions and category paths about each video's *content topic*.

    As in the official files, the caption taxonomy is not the ``feat`` tag set: the content
    topic is the video's primary tag with probability :data:`CAPTION_ON_TAG`, else another
    topic, so the text tells a video's tags only in part.
    """
    rows = []
    n_topics = world.config.n_topics
    on_tag = rng.random(len(world.topic)) < CAPTION_ON_TAG
    other = (world.topic + rng.integers(1, n_topics, len(world.topic))) % n_topics
    for v in range(len(world.topic)):
        content = int(world.topic[v] if on_tag[v] else other[v])
        name = TOPICS[content]
        picked = rng.choice(WORDS[name].split(), 2, replace=False)
        caption = f"{name} {picked[0]} {picked[1]} #{v % 97}"
        if v % 37 == 5:
            caption = caption.replace(" ", "\r", 1)      # bare carriage return, as in the official file
        if v % 53 == 7:
            caption = f"{caption}, 好看 \"wow\""           # comma, quotes and CJK: quoted field
        cover = "UNKNOWN" if v % 3 else f"{name} of the day"
        tags = "[]" if v % 4 == 0 else f"[{picked[0]},{name.lower()}]"
        second = f"{name} {picked[1]}"
        third_id, third = (-124, "UNKNOWN") if v % 2 else (1000 + v % 50, f"{picked[1]} clips")
        first_id, first = (-124, "UNKNOWN") if v % 41 == 0 else (content, name)
        rows.append((v, cover, caption, tags, first_id, first, 100 + content, second, third_id, third))
    write_rows(folder / "kuairec_caption_category.csv", CAPTION_COLUMNS, rows)


def _user_features(folder: Path, n_users: int, rng: np.random.Generator) -> None:
    degrees = np.array(["high_active", "full_active", "middle_active", "UNKNOWN"])
    ranges = np.array(["0", "(0,10]", "(10,50]", "(50,100]", "(100,150]", "500+"])
    rows = []
    for u in range(n_users):
        onehot = [rng.integers(0, 8) for _ in range(18)]
        missing = rng.random(18) < 0.05
        onehot_txt = ["" if m else (f"{float(v)}" if i in (4, 5, 6, 7) else str(v))
                      for i, (v, m) in enumerate(zip(onehot, missing, strict=True))]
        follow, fans, friends = rng.integers(0, 300), rng.integers(0, 60), rng.integers(0, 20)
        rows.append((u, rng.choice(degrees), int(rng.random() < 0.1), int(rng.random() < 0.02),
                     int(rng.random() < 0.2), follow, rng.choice(ranges), fans, rng.choice(ranges), friends,
                     rng.choice(ranges), rng.integers(8, 2000), rng.choice(["8-14", "15-30", "31-60", "730+"]),
                     *onehot_txt))
    write_rows(folder / "user_features.csv", tuple(USER_SCHEMA), rows)
