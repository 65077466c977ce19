"""Loaders for MovieLens-1M (Harper & Konstan, 2015), reading the official ``.dat`` files.

``<root>/ml-1m/`` (or ``<root>`` itself) holds, without header and with ``::``
as separator:

* ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``;
* ``movies.dat``: ``MovieID::Title::Genres`` (latin-1; genres pipe-separated);
* ``users.dat``: ``UserID::Gender::Age::Occupation::Zip-code`` (zip kept as text:
  some are ``55455-0001`` or have leading zeros).

Checked on load: IDs >= 0, timestamps within
:data:`~flexbench.datasets._io.PLAUSIBLE_TIME`, ratings 1..5, one line per movie
ID in ``movies.dat``, every rated movie in ``movies.dat``. A ``movies.dat`` that
is valid UTF-8 with non-ASCII bytes (re-saved by an editor) is read as UTF-8,
not turned into mojibake, and the note says so; duplicate ``(user, movie)``
ratings keep the first line (counted repair, :attr:`MovieLensRaw.repairs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.datasets._io import check_ids, check_times, drop_duplicates, read_dat, require_file
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
    repairs: tuple[str, ...] = ()


def data_dir(root: Path) -> Path:
    """Locate the folder holding ``ratings.dat`` under ``root``."""
    root = Path(root)
    for cand in (root / "ml-1m", root):
        if (cand / "ratings.dat").is_file():
            return cand
    raise FlexBenchError(f"no MovieLens-1M data under {root} (looked for 'ml-1m/ratings.dat'); {HINT}")


def load_ratings(path: Path) -> pd.DataFrame:
    """``user_id, movie_id, rating, timestamp`` (int32, int32, int8, int64); ratings must be 1..5."""
    path = require_file(Path(path), HINT)
    frame = read_dat(path, RATINGS, {"user_id": "int32", "movie_id": "int32", "rating": "int8", "timestamp": "int64"},
                     encoding="ascii")
    check_ids(path, frame, ("user_id", "movie_id"), first_line=1, kind="field")
    check_times(path, frame, "timestamp", first_line=1, kind="field")
    bad = ~frame["rating"].between(1, 5)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FlexBenchError(f"{path}, line {i + 1}, field 'rating': {frame['rating'].iloc[i]}, expected 1..5")
    return frame


def movies_encoding(path: Path) -> str:
    """``latin-1`` (the official encoding), or ``utf-8`` when the bytes are non-ASCII and valid UTF-8.

    Latin-1 text with accented letters is almost never valid UTF-8 (an ``é`` is
    one byte 0xE9, which UTF-8 only allows as the lead of a three-byte sequence).
    """
    raw = Path(path).read_bytes()
    if raw.isascii():
        return "latin-1"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def load_movies(path: Path, repairs: list[str] | None = None) -> pd.DataFrame:
    """``movie_id, title, genres`` with genres as ``list[str]``; one line per movie ID.

    The file is latin-1; a UTF-8 copy is read as UTF-8 (:func:`movies_encoding`),
    with a note appended to ``repairs``.
    """
    path = require_file(Path(path), HINT)
    encoding = movies_encoding(path)
    frame = read_dat(path, MOVIES, {"movie_id": "int32", "title": "str", "genres": "str"}, encoding=encoding)
    if encoding == "utf-8" and repairs is not None:
        repairs.append(f"{path.name}: read as UTF-8 (the official file is latin-1; "
                       f"{int((~frame['title'].map(str.isascii)).sum())} titles have non-ASCII letters)")
    check_ids(path, frame, ("movie_id",), first_line=1, kind="field")
    dup = frame["movie_id"].duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        movie = int(frame["movie_id"].iloc[i])
        j = int(np.flatnonzero(frame["movie_id"].to_numpy() == movie)[0])
        raise FlexBenchError(f"{path}, line {i + 1}: movie {movie} also on line {j + 1}; expected one line per movie")
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
    repairs: list[str] = []
    ratings = load_ratings(folder / "ratings.dat")
    movies = load_movies(folder / "movies.dat", repairs)
    unknown = ~ratings["movie_id"].isin(movies["movie_id"])
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise FlexBenchError(f"{folder / 'ratings.dat'}, line {i + 1}: movie {ratings['movie_id'].iloc[i]} "
                             f"is not in movies.dat; the files are from different releases or truncated")
    ratings, note = drop_duplicates(folder / "ratings.dat", ratings, ("user_id", "movie_id"))
    repairs += [note] if note else []
    return MovieLensRaw(ratings, movies, load_users(folder / "users.dat") if users else None, tuple(repairs))


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
