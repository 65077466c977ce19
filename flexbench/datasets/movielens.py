"""Loaders for MovieLens-1M (Harper & Konstan, 2015), reading the official ``.dat`` files.

``<root>/ml-1m/`` (or ``<root>`` itself) holds, without header and with ``::``
as separator:

* ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``;
* ``movies.dat``: ``MovieID::Title::Genres`` (latin-1; genres pipe-separated);
* ``users.dat``: ``UserID::Gender::Age::Occupation::Zip-code`` (zip kept as text:
  some are ``55455-0001`` or have leading zeros).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.datasets._io import read_dat, require_file
from flexbench.errors import FlexBenchError

RATINGS = ("user_id", "movie_id", "rating", "timestamp")
MOVIES = ("movie_id", "title", "genres")
USERS = ("user_id", "gender", "age", "occupation", "zip")
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western")
HINT = "run `flexbench data fetch ml-1m` or `flexbench data sample ml-1m`"
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True)
class MovieLensRaw:
    """The three ML-1M tables."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame | None


def data_dir(root: Path) -> Path:
    """Locate the folder holding ``ratings.dat`` under ``root``."""
    root = Path(root)
    for cand in (root / "ml-1m", root):
        if (cand / "ratings.dat").is_file():
            return cand
    raise FlexBenchError(f"no MovieLens-1M data under {root} (looked for 'ml-1m/ratings.dat'); {HINT}")


def load_ratings(path: Path) -> pd.DataFrame:
    """``user_id, movie_id, rating, timestamp`` (int32, int32, int8, int64); ratings must be 1..5."""
    frame = read_dat(require_file(Path(path), HINT), RATINGS,
                     {"user_id": "int32", "movie_id": "int32", "rating": "int8", "timestamp": "int64"},
                     encoding="ascii")
    bad = ~frame["rating"].between(1, 5)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FlexBenchError(f"{path}, line {i + 1}, field 'rating': {frame['rating'].iloc[i]}, expected 1..5")
    return frame


def load_movies(path: Path) -> pd.DataFrame:
    """``movie_id, title, genres`` with genres as ``list[str]`` (file is latin-1)."""
    frame = read_dat(require_file(Path(path), HINT), MOVIES, {"movie_id": "int32", "title": "str", "genres": "str"},
                     encoding="latin-1")
    frame["genres"] = [g.split("|") if g else [] for g in frame["genres"]]
    return frame


def load_users(path: Path) -> pd.DataFrame:
    """``user_id, gender, age, occupation, zip`` (zip as text)."""
    return read_dat(require_file(Path(path), HINT), USERS,
                    {"user_id": "int32", "gender": "str", "age": "int16", "occupation": "int16", "zip": "str"},
                    encoding="latin-1")


def load_movielens(root: Path, *, users: bool = True) -> MovieLensRaw:
    """Load ML-1M under ``root`` (see :func:`data_dir`)."""
    folder = data_dir(root)
    ratings = load_ratings(folder / "ratings.dat")
    movies = load_movies(folder / "movies.dat")
    unknown = ~ratings["movie_id"].isin(movies["movie_id"])
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise FlexBenchError(f"{folder / 'ratings.dat'}, line {i + 1}: movie {ratings['movie_id'].iloc[i]} "
                             f"is not in movies.dat; the files are from different releases or truncated")
    return MovieLensRaw(ratings, movies, load_users(folder / "users.dat") if users else None)


def item_table(movies: pd.DataFrame) -> pd.DataFrame:
    """Items ``item_id, text, topics`` (paper Appendix E); topics are the genres.

    Text::

        Movie Title: <title without the year>
        Movie Year: <year>
        Movie genres: <genre_1>, <genre_2>, ...
    """
    texts = []
    for title, genres in zip(movies["title"], movies["genres"], strict=True):
        match = _YEAR.search(title)
        name, year = (title[:match.start()].strip(), match.group(1)) if match else (title.strip(), "unknown")
        texts.append(f"Movie Title: {name}\nMovie Year: {year}\nMovie genres: {', '.join(genres)}")
    return pd.DataFrame({"item_id": movies["movie_id"].astype(str).to_numpy(), "text": texts,
                         "topics": [list(g) for g in movies["genres"]]})
