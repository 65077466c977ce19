"""Writing helpers shared by the synthetic sample writers (byte-deterministic output)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

BEIJING = 8 * 3600


def field(value: object) -> str:
    """CSV field quoted only when it holds a comma, a quote or a newline.

    A bare carriage return is *not* a reason to quote: the official KuaiRec
    caption file has unquoted CRs inside captions (read it with lineterminator="\\n").
    """
    if value is None:
        return ""
    text = str(value)
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]], encoding: str = "utf-8") -> None:
    """Write a header and rows with :func:`field` quoting and ``\\n`` line ends."""
    buf = io.StringIO()
    buf.write(",".join(header) + "\n")
    for row in rows:
        buf.write(",".join(field(v) for v in row) + "\n")
    path.write_bytes(buf.getvalue().encode(encoding))


def local_time_strings(ts_ms: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """``time`` (``2020-07-05 05:27:48.378``) and ``date`` (yyyymmdd int) in Beijing time."""
    local = pa.array((ts_ms + BEIJING * 1000).astype("datetime64[ms]"))
    time = pc.strftime(local, format="%Y-%m-%d %H:%M:%S", locale="C")
    date = pc.cast(pc.strftime(local, format="%Y%m%d", locale="C"), pa.int64())
    return time, date


def write_matrix(path: Path, user: np.ndarray, video: np.ndarray, video_duration: np.ndarray,
                 watch_ratio: np.ndarray, ts_ms: np.ndarray, missing_time: np.ndarray | None,
                 float_date: bool) -> None:
    """Write a KuaiRec interaction matrix in the official column order.

    ``play_duration = round(watch_ratio * video_duration)`` (milliseconds) and the
    written ``watch_ratio`` is ``play_duration / video_duration`` to 6 decimals,
    as in the official files. Rows flagged ``missing_time`` get empty
    ``time, date, timestamp``; ``float_date`` writes ``date`` as ``20200705.0``.
    """
    play = np.rint(watch_ratio * video_duration).astype(np.int64)
    ratio = np.round(play / video_duration, 6)
    time, date = local_time_strings(ts_ms)
    date_col: pa.Array = pc.binary_join_element_wise(pc.cast(date, pa.string()), ".0", "") if float_date else date
    stamp = pa.array(ts_ms / 1000.0)
    if missing_time is not None and missing_time.any():
        mask = pa.array(missing_time)
        time = pc.if_else(mask, pa.scalar(None, pa.string()), time)
        date_col = pc.if_else(mask, pa.scalar(None, date_col.type), date_col)
        stamp = pc.if_else(mask, pa.scalar(None, pa.float64()), stamp)
    table = pa.table({"user_id": user, "video_id": video, "play_duration": play,
                      "video_duration": video_duration.astype(np.int64), "time": time, "date": date_col,
                      "timestamp": stamp, "watch_ratio": ratio})
    with path.open("wb") as fh:
        fh.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none",
                                                      batch_size=1 << 20))
