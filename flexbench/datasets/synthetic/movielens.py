"""Synthetic MovieLens-1M in the official layout (``ml-1m/*.dat``), quirks included.

``small``: 400 users rating 20..130 of 600 movies (about 24,000 ratings) drawn
from the Markov world of :mod:`.world` with the 18 ML genres as topics, over
30 days of rating sessions from 2000-05-01. ``full``: 6,040 users, 3,706
movies, 1,000,209 ratings over ~3 years, for loading benchmarks.

Quirks reproduced: ``::`` separators, no header, latin-1 titles (``é``, ``ñ``),
titles ending with the year (``"Matrix, The (1999)"``), pipe-separated genres,
non-contiguous movie IDs, zip codes as text (``02139``, ``55455-0001``).
Ratings: the world's engagement ``z`` cut at its quantiles so that the shares of 1..5 stars are
the official ones (:func:`ratings_from`, :data:`RATING_SHARES`).

Genres (:data:`GENRE_MIX`): primary and secondary genres drawn with the official
``movies.dat`` genre frequencies (Drama and Comedy dominate; half the movies carry a second
genre), so a 10-item history covers the common genres and few candidates are niche, as
for real raters.

Dynamics (:data:`DYNAMICS`): raters move between genres (``stay = 0.7``), follow
item-to-item successors 40% of the time and otherwise pick popular movies
(``state_pop_power = noise_pop_power = 1``, Zipf exponent 0.9), so what users rate is far
more popular than what they leave unrated -- the property of the official files that made
top-retrieved unrated fillers separable by popularity (issue 14). Measured on this sample
(test split, NDCG@5, protocol-1 top-retrieved fillers): interest popularity 0.466 against
STAR 0.270, random 0.192 and the retriever's order 0.176 (rated items behind the fillers);
novelty popularity 0.471 below random 0.558 -- the pattern of the official files
(0.562 / 0.380 / 0.221 / 0.063 and 0.328 < 0.546). With the popularity-matched fillers
of protocol 2 (:mod:`flexbench.datasets.candidates`) the popularity AUC of rated against
unrated candidates drops from 0.714 to 0.498, popularity falls to 0.273 and STAR leads at 0.292.
Earlier dynamics (``stay = 0.95``, ``p_successor = 0.6``, uniform picks
within a genre) gave rated and unrated items the same popularity (popularity 0.266,
random 0.204 on interest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flexbench.datasets.movielens import GENRES
from flexbench.datasets.synthetic.world import WorldConfig, event_times, make_world, user_sequence

START = 957_139_200  # 2000-05-01 00:00 UTC
ADJ = ("Silent", "Last", "Crimson", "Lost", "Electric", "Broken", "Golden", "Hidden", "Midnight", "Wild",
       "Frozen", "Secret", "Distant", "Burning", "Quiet", "Iron", "Velvet", "Savage", "Little", "Final")
NOUN = {"Action": "Mission", "Adventure": "Expedition", "Animation": "Toybox", "Children's": "Treehouse",
        "Comedy": "Wedding", "Crime": "Heist", "Documentary": "Chronicle", "Drama": "Letters",
        "Fantasy": "Kingdom", "Film-Noir": "Alibi", "Horror": "Cellar", "Musical": "Melody", "Mystery": "Riddle",
        "Romance": "Summer", "Sci-Fi": "Orbit", "Thriller": "Witness", "War": "Front", "Western": "Canyon"}
LATIN1 = ("Amélie", "Señor", "Björk", "Café", "Noël", "Fiancée")
# Movies per genre in the official movies.dat (3,883 movies, 6,408 genre tags: 1.65 per movie).
GENRE_MOVIES = {"Action": 503, "Adventure": 283, "Animation": 105, "Children's": 251, "Comedy": 1200, "Crime": 211,
                "Documentary": 127, "Drama": 1603, "Fantasy": 68, "Film-Noir": 44, "Horror": 343, "Musical": 114,
                "Mystery": 106, "Romance": 471, "Sci-Fi": 276, "Thriller": 492, "War": 143, "Western": 68}
DYNAMICS = {"stay": 0.7, "p_successor": 0.4, "p_state": 0.35, "state_pop_power": 1.0, "noise_pop_power": 1.0,
            "pop_exponent": 0.9}
GENRE_MIX = {"topic_weights": tuple(float(GENRE_MOVIES[g]) for g in GENRES), "p_second": 0.5}
# Rating shares (%) of 1..5 in the official ratings.dat (reference_stats.py: users 1-300).
RATING_SHARES = (5.5, 10.3, 25.7, 34.6, 24.0)
SIZES = {"small": (400, 600, 24_000, 30), "full": (6_040, 3_706, 1_000_209, 1_040)}


def write_movielens(out: Path, scale: str = "small", seed: int = 0) -> Path:
    """Write ``<out>/ml-1m/{ratings,movies,users}.dat`` and return the folder."""
    n_users, n_items, n_ratings, days = SIZES[scale]
    folder = Path(out) / "ml-1m"
    folder.mkdir(parents=True, exist_ok=True)
    world = make_world(WorldConfig(n_users, n_items, len(GENRES), seed=seed, **DYNAMICS, **GENRE_MIX))
    rng = np.random.default_rng([seed, 2])
    movie_ids = np.sort(rng.choice(np.arange(1, int(n_items * 1.07) + 1), n_items, replace=False))
    _movies(folder, world.topic, world.second_topic, movie_ids, rng)
    _users(folder, n_users, rng)
    counts = _counts(n_users, n_items, n_ratings, rng)
    if scale == "small":
        seqs = [user_sequence(world, u, int(c), rng) for u, c in enumerate(counts)]
        items = np.concatenate([s[0] for s in seqs])
        in_state = np.concatenate([s[1] for s in seqs])
        times = np.concatenate([event_times(int(c), rng, START, days, session_gap=25.0) for c in counts])
    else:
        items = np.concatenate([rng.choice(n_items, int(c), replace=False, p=world.popularity) for c in counts])
        in_state = rng.random(len(items)) < 0.5
        times = np.concatenate([np.sort(START + rng.random(int(c)) * days * 86_400) for c in counts])
    users = np.repeat(np.arange(n_users), counts)
    z = world.engagement(users, items, in_state, rng)
    rating = ratings_from(z)
    lines = [f"{u + 1}::{m}::{r}::{t}" for u, m, r, t in
             zip(users, movie_ids[items], rating, times.astype(np.int64), strict=True)]
    (folder / "ratings.dat").write_bytes(("\n".join(lines) + "\n").encode("ascii"))
    return folder


def ratings_from(z: np.ndarray) -> np.ndarray:
    """Ratings 1..5 by thresholding engagement ``z`` at its quantiles: the shares are :data:`RATING_SHARES`.

    ``rating = 1 + #{j : z > quantile(z, c_j)}`` with ``c_j`` the cumulative shares of ratings 1..4;
    monotone in ``z``, so who likes what is the world's, and only the scale is the official one.
    """
    cuts = np.quantile(z, np.cumsum(RATING_SHARES)[:-1] / 100.0)
    return (1 + np.searchsorted(cuts, z, side="left")).astype(np.int64)


def _counts(n_users: int, n_items: int, total: int, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: at least 20 (as in ML-1M), heavy-tailed, summing to ``total``."""
    raw = 20 + rng.pareto(1.3, n_users) * 30
    cap = min(n_items - 1, int(n_items * 0.6))
    counts = np.clip(np.rint(20 + (raw - 20) * (total - 20 * n_users) / (raw - 20).sum()), 20, cap).astype(int)
    diff = total - counts.sum()
    order = rng.permutation(n_users)
    i = 0
    while diff != 0:
        u = order[i % n_users]
        step = 1 if diff > 0 else -1
        if 20 <= counts[u] + step <= cap:
            counts[u] += step
            diff -= step
        i += 1
    return counts


def _movies(folder: Path, topic: np.ndarray, second: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> None:
    lines = []
    for i, mid in enumerate(ids):
        genres = [GENRES[topic[i]]] + ([GENRES[second[i]]] if second[i] >= 0 else [])
        title = f"{ADJ[rng.integers(len(ADJ))]} {NOUN[genres[0]]}"
        if i % 7 == 0:
            title = f"{title.split()[1]}, The"                      # "Matrix, The (1999)"
        if i % 23 == 3:
            title = f"{LATIN1[i % len(LATIN1)]}'s {title}"          # latin-1 characters
        if i % 5 == 0:
            title = f"{title}: Part {1 + i % 3}"
        lines.append(f"{mid}::{title} ({int(rng.integers(1919, 2001))})::{'|'.join(sorted(set(genres), key=GENRES.index))}")
    (folder / "movies.dat").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def _users(folder: Path, n_users: int, rng: np.random.Generator) -> None:
    ages = np.array([1, 18, 25, 35, 45, 50, 56])
    lines = []
    for u in range(n_users):
        zip_code = f"{rng.integers(0, 100_000):05d}" + (f"-{rng.integers(0, 10_000):04d}" if u % 29 == 0 else "")
        lines.append(f"{u + 1}::{'MF'[rng.integers(2)]}::{ages[rng.integers(len(ages))]}::"
                     f"{rng.integers(0, 21)}::{zip_code}")
    (folder / "users.dat").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
