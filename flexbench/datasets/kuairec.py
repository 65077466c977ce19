"""Loaders for KuaiRec 2.0 (Gao et al., CIKM 2022), reading the official files as they are.

Layout: ``<root>/KuaiRec 2.0/data/`` (``<root>`` may also be ``KuaiRec 2.0`` or
the ``data`` folder itself) with

* ``small_matrix.csv`` / ``big_matrix.csv``: ``user_id, video_id,
  play_duration, video_duration, time, date, timestamp, watch_ratio``. Some
  small-matrix rows have empty ``time, date, timestamp``; ``date`` is written
  as a float (``20200705.0``) although it is a ``yyyymmdd`` integer, so it is
  read as ``intlike`` and returned as nullable ``Int64``; ``timestamp`` is Unix
  seconds with milliseconds (float64, NaN where empty).
* ``item_categories.csv``: ``video_id, feat`` where ``feat`` is a text list
  such as ``"[27, 9]"`` (tags 0..30), returned as ``list[int]``.
* ``kuairec_caption_category.csv``: captions and the three-level category
  path. Some captions hold a bare carriage return, so the file is read with
  ``lineterminator="\\n"``; ``topic_tag`` is a list ``[a,b]`` of unquoted words (not a
  Python literal);
  ``-124`` and ``UNKNOWN`` mean missing (returned as ``<NA>``).
* ``user_features.csv`` (integer columns written as floats where values are
  missing) and, where present, ``item_daily_features.csv``.

Checked on load (one error naming file and line): IDs >= 0; ``watch_ratio``
present, finite and in ``[0, MAX_WATCH_RATIO]`` (1e308 is finite but overflows the
float32 label matrix); timestamps within
:data:`~flexbench.datasets._io.PLAUSIBLE_TIME`; no header-only matrix; one row per
video in the category and caption files, which must cover every small-matrix
video (:func:`check_catalogue`; a caption file cut mid-way fails here).
Duplicate ``(user_id, video_id)`` rows of the small matrix are the one repair
(:func:`dedupe_small_matrix`): the first row of each pair is kept, the count printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flexbench.datasets._io import (
    check_header,
    check_ids,
    check_times,
    check_values,
    drop_duplicates,
    read_csv_strict,
    require_file,
)
from flexbench.errors import FlexBenchError

MATRIX_SCHEMA = {"user_id": "int", "video_id": "int", "play_duration": "intlike", "video_duration": "intlike",
                 "time": "str", "date": "intlike", "timestamp": "float", "watch_ratio": "num"}
MAX_WATCH_RATIO = 1e6
"""Largest watch ratio accepted: far above any replay count, and safe in float32 sums."""
CATEGORY_SCHEMA = {"video_id": "int", "feat": "str"}
CAPTION_COLUMNS = ("video_id", "manual_cover_text", "caption", "topic_tag",
                   "first_level_category_id", "first_level_category_name",
                   "second_level_category_id", "second_level_category_name",
                   "third_level_category_id", "third_level_category_name")
_RANGE_COLS = ("follow_user_num_range", "fans_user_num_range", "friend_user_num_range", "register_days_range")
USER_SCHEMA = {"user_id": "int", "user_active_degree": "str", "is_lowactive_period": "intlike",
               "is_live_streamer": "intlike", "is_video_author": "intlike",
               "follow_user_num": "intlike", "follow_user_num_range": "str",
               "fans_user_num": "intlike", "fans_user_num_range": "str",
               "friend_user_num": "intlike", "friend_user_num_range": "str",
               "register_days": "intlike", "register_days_range": "str",
               **{f"onehot_feat{i}": "intlike" for i in range(18)}}
_DAILY_TEXT = ("video_type", "upload_dt", "upload_type", "visible_status", "video_tag_name")
MISSING_ID, MISSING_TEXT = -124, "UNKNOWN"
_FEAT_RE = r"^\[(\d+(, ?\d+)*)?\]$"
HINT = "run `flexbench data fetch kuairec` or `flexbench data sample kuairec`"


@dataclass(frozen=True)
class KuaiRecRaw:
    """The KuaiRec tables a prepare run needs (``None`` where not loaded)."""

    small: pd.DataFrame
    big: pd.DataFrame | None
    categories: pd.DataFrame
    captions: pd.DataFrame | None
    users: pd.DataFrame | None = None


def data_dir(root: Path) -> Path:
    """Locate the folder that holds ``small_matrix.csv`` under ``root``."""
    root = Path(root)
    for cand in (root / "KuaiRec 2.0" / "data", root / "data", root):
        if (cand / "small_matrix.csv").is_file():
            return cand
    raise FlexBenchError(f"no KuaiRec data under {root} (looked for 'KuaiRec 2.0/data/small_matrix.csv'); {HINT}")


def load_matrix(path: Path, usecols: list[str] | None = None) -> pd.DataFrame:
    """Read ``small_matrix.csv`` or ``big_matrix.csv`` (pyarrow, explicit dtypes)."""
    path = require_file(Path(path), HINT)
    frame = read_csv_strict(path, MATRIX_SCHEMA, usecols=usecols)
    check_ids(path, frame, ("user_id", "video_id"))
    if "watch_ratio" in frame:
        wr = frame["watch_ratio"].to_numpy(dtype=np.float64)
        check_values(path, frame, "watch_ratio", np.isfinite(wr) & (wr >= 0) & (wr <= MAX_WATCH_RATIO),
                     f"a finite number in [0, {MAX_WATCH_RATIO:g}]")
    check_times(path, frame, "timestamp")
    for col in ("user_id", "video_id"):
        if col in frame:
            frame[col] = frame[col].astype(np.int32)
    return frame


def dedupe_small_matrix(path: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """One row per ``(user_id, video_id)`` of the small matrix (first in file order) and the repair note."""
    return drop_duplicates(Path(path), frame, ("user_id", "video_id"))


def _unique_videos(path: Path, frame: pd.DataFrame, where: str, first: int) -> None:
    """Raise if a video has two rows (``where``: ``line`` or ``record``; row 0 is number ``first``)."""
    dup = frame["video_id"].duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        vid = int(frame["video_id"].iloc[i])
        j = int(np.flatnonzero(frame["video_id"].to_numpy() == vid)[0])
        raise FlexBenchError(f"{path}, {where} {i + first}: video {vid} also {'on' if where == 'line' else 'in'} "
                             f"{where} {j + first}; "
                             f"expected one row per video")


def check_catalogue(folder: Path, raw: KuaiRecRaw, video_ids: np.ndarray) -> None:
    """The category and caption files must have a row for every catalogue (small-matrix) video."""
    tables = (("item_categories.csv", raw.categories), ("kuairec_caption_category.csv", raw.captions))
    for name, table in tables:
        if table is None:
            continue
        missing = np.setdiff1d(video_ids, table["video_id"].to_numpy())
        if len(missing):
            path = Path(folder) / name
            why = "the file is truncated or from another release" if path.read_bytes().endswith(b"\n") \
                else "it ends mid-line: the file is truncated"
            raise FlexBenchError(f"{path}: no row for {len(missing)} of the {len(video_ids)} catalogue videos "
                                 f"of small_matrix.csv (first: video {int(missing[0])}); {why}")


def load_item_categories(path: Path) -> pd.DataFrame:
    """``video_id`` and ``feat`` as ``list[int]`` (``"[27, 9]"`` -> ``[27, 9]``)."""
    path = require_file(Path(path), HINT)
    frame = read_csv_strict(path, CATEGORY_SCHEMA)
    check_ids(path, frame, ("video_id",))
    _unique_videos(path, frame, "line", 2)
    feat = frame["feat"].astype(str).str.strip()
    bad = ~feat.str.match(_FEAT_RE)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FlexBenchError(f"{path}, line {i + 2}, column 'feat': value {feat.iloc[i]!r}, "
                             f"expected a list of tag numbers like \"[27, 9]\"")
    frame["feat"] = [[int(t) for t in s[1:-1].split(",") if t.strip()] for s in feat]
    return frame


def load_captions(path: Path) -> pd.DataFrame:
    """Captions and category path, read with ``lineterminator="\\n"`` (bare CRs in captions).

    ``topic_tag`` becomes ``list[str]``; ``-124`` ids and ``UNKNOWN`` texts become missing.
    """
    path = require_file(Path(path), HINT)
    check_header(path, CAPTION_COLUMNS)
    text_cols = [c for c in CAPTION_COLUMNS if not c.endswith("_id")]
    try:
        frame = pd.read_csv(path, lineterminator="\n", engine="c", encoding="utf-8",
                            dtype={**{c: "string" for c in text_cols}, "video_id": "int64",
                                   **{c: "float64" for c in CAPTION_COLUMNS[4::2]}},
                            keep_default_na=False, na_values={c: [""] for c in CAPTION_COLUMNS[4::2]})
    except (ValueError, pd.errors.ParserError) as err:
        raise FlexBenchError(f"{path}: {_pandas_message(err)}; expected {len(CAPTION_COLUMNS)} "
                             f"comma-separated fields per line ({', '.join(CAPTION_COLUMNS)})") from None
    last = CAPTION_COLUMNS[-1]
    frame[last] = frame[last].str.rstrip("\r")
    for col in CAPTION_COLUMNS[4::2]:
        ids = frame[col].to_numpy(dtype=np.float64, na_value=np.nan).copy()
        if (np.isfinite(ids) & (ids != np.floor(ids))).any():
            i = int(np.flatnonzero(np.isfinite(ids) & (ids != np.floor(ids)))[0])
            raise FlexBenchError(f"{path}, row {i + 1}, column {col!r}: {ids[i]!r} is not a category id")
        ids[ids == MISSING_ID] = np.nan
        frame[col] = pd.array(ids, dtype="Float64").astype("Int64")
    for col in text_cols:
        frame[col] = frame[col].mask(frame[col].isin([MISSING_TEXT, ""]))
    frame["topic_tag"] = [_tag_list(v) for v in frame["topic_tag"]]
    if frame.empty:
        raise FlexBenchError(f"{path}: no data rows (only the header); download or generate it again")
    check_ids(path, frame, ("video_id", *CAPTION_COLUMNS[4::2]), first_line=1, where="record")
    _unique_videos(path, frame, "record", 1)
    return frame


def _tag_list(value: object) -> list[str]:
    if value is None or value is pd.NA or not isinstance(value, str):
        return []
    inner = value.strip().removeprefix("[").removesuffix("]")
    return [t.strip().strip("'\"") for t in inner.split(",") if t.strip()]


def _pandas_message(err: Exception) -> str:
    msg = str(err).strip().splitlines()[-1]
    match = re.search(r"line (\d+)", msg)
    return f"line {match.group(1)}: {msg}" if match else msg


def load_user_features(path: Path) -> pd.DataFrame:
    """``user_features.csv``; integer columns written as floats come back as ``Int64``."""
    return read_csv_strict(require_file(Path(path), HINT), USER_SCHEMA)


def load_item_daily_features(path: Path) -> pd.DataFrame:
    """``item_daily_features.csv``: text columns as strings, ids as int, every count as ``intlike``.

    The schema follows the file's own header (the documentation and the files
    disagree on a few names); ``video_id`` and ``date`` must be present.
    """
    path = require_file(Path(path), HINT)
    with path.open(encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split(",")
    if "video_id" not in header or "date" not in header:
        raise FlexBenchError(f"{path}, line 1: header {header[:6]}... lacks 'video_id' and 'date'")
    schema = {c: "int" if c in ("video_id", "date") else "str" if c in _DAILY_TEXT else
              "float" if c == "play_progress" else "intlike" for c in header}
    return read_csv_strict(path, schema)


def load_kuairec(root: Path, *, big: bool = True, captions: bool = True, users: bool = False,
                 matrix_columns: list[str] | None = None) -> KuaiRecRaw:
    """Load the KuaiRec tables under ``root`` (see :func:`data_dir`).

    ``matrix_columns`` restricts the matrix columns read (prepare needs only
    ``user_id, video_id, timestamp, watch_ratio``), which halves load time.
    """
    folder = data_dir(root)
    cap_path = folder / "kuairec_caption_category.csv"
    return KuaiRecRaw(
        small=load_matrix(folder / "small_matrix.csv", matrix_columns),
        big=load_matrix(folder / "big_matrix.csv", matrix_columns) if big else None,
        categories=load_item_categories(folder / "item_categories.csv"),
        captions=load_captions(cap_path) if captions else None,
        users=load_user_features(folder / "user_features.csv") if users else None,
    )


def item_table(raw: KuaiRecRaw, video_ids: np.ndarray) -> pd.DataFrame:
    """Items ``item_id, text, topics`` for ``video_ids`` (paper Appendix E).

    Text::

        Video caption: <caption, else cover text>
        Category path: <level 1> > <level 2> > <level 3>   (missing levels left out)
        Video tag: <topic tags, comma-separated>           (line left out when none)

    Topics (for the novelty need) are the ``feat`` tags of ``item_categories.csv``.
    """
    feats = dict(zip(raw.categories["video_id"].to_numpy(), raw.categories["feat"], strict=True))
    caps = raw.captions.set_index("video_id") if raw.captions is not None else None
    texts, topics = [], []
    for vid in (int(v) for v in video_ids):
        row = caps.loc[vid] if caps is not None and vid in caps.index else None
        texts.append(_video_text(row))
        topics.append([str(t) for t in feats.get(vid, [])])
    return pd.DataFrame({"item_id": [str(int(v)) for v in video_ids], "text": texts, "topics": topics})


def _video_text(row: pd.Series | None) -> str:
    if row is None:
        return "Video caption: \nCategory path: "
    caption = row["caption"] if isinstance(row["caption"], str) else row["manual_cover_text"]
    caption = " ".join(str(caption).split()) if isinstance(caption, str) else ""
    levels = [row[c] for c in ("first_level_category_name", "second_level_category_name",
                               "third_level_category_name") if isinstance(row[c], str)]
    lines = [f"Video caption: {caption}", f"Category path: {' > '.join(levels)}"]
    if row["topic_tag"]:
        lines.append(f"Video tag: {', '.join(row['topic_tag'])}")
    return "\n".join(lines)
