"""Fast, strict CSV reading for the official raw files.

The fast path is pyarrow's multithreaded CSV reader with an explicit column
schema (no type inference, no Python row loops). pyarrow reports *what* went
wrong but not *where*, so on failure :func:`read_csv_strict` runs a diagnostic
pass over the file with the standard :mod:`csv` module and raises one
:class:`~flexbench.errors.FlexBenchError` naming the file, the line, the column
and what was expected. Nothing is ever skipped silently.

Column kinds:

* ``int``: integer, no missing values;
* ``intlike``: documented as an integer but written as a float in the files
  (``20200705.0``); read as float64, checked integral, returned as nullable
  ``Int64`` (missing allowed);
* ``float``: float64, missing allowed (NaN);
* ``num``: float64, no missing values (``nan``/``inf`` text still parses: range checks follow);
* ``str``: text, missing allowed.

A file with a header but no data rows is an error. Value checks
(:func:`check_values`, :func:`check_ids`, :func:`check_times`) name the first
offending line; :func:`drop_duplicates` is the one counted repair (first row of
each key kept, in file order) and returns the line that reports it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from flexbench.errors import FlexBenchError

_ARROW = {"int": pa.int64(), "intlike": pa.float64(), "float": pa.float64(), "num": pa.float64(),
          "str": pa.string()}
Schema = Mapping[str, str]
PLAUSIBLE_TIME = (631_152_000, 4_102_444_800)  # Unix seconds of 1990-01-01 and 2100-01-01 (UTC)
"""Timestamps outside this window are a unit error (milliseconds) or corruption, not an event."""


def require_file(path: Path, hint: str) -> Path:
    """Return ``path`` if it is a file, else raise saying what to do (``hint``)."""
    if not path.is_file():
        raise FlexBenchError(f"missing file {path}; {hint}")
    return path


def check_header(path: Path, expected: Sequence[str], *, encoding: str = "utf-8", sep: str = ",") -> None:
    """Raise unless the first line of ``path`` names exactly the ``expected`` columns."""
    with path.open("rb") as fh:
        first = fh.readline().decode(encoding, errors="replace").rstrip("\r\n")
    if not first:
        raise FlexBenchError(f"{path}: the file is empty; expected a header line "
                             f"{sep.join(expected)!r}. Download or generate it again.")
    got = [c.strip() for c in first.split(sep)]
    if got != list(expected):
        raise FlexBenchError(f"{path}, line 1: header has columns {got}, expected {list(expected)}")


def read_csv_strict(path: Path, schema: Schema, *, usecols: Sequence[str] | None = None) -> pd.DataFrame:
    """Read ``path`` (header = the keys of ``schema``, in order) with explicit types.

    ``usecols`` restricts the returned columns (the whole file is still validated
    for its column count). Integer columns come back as ``int64``, ``intlike``
    as nullable ``Int64``, floats as ``float64`` and text as pandas strings.
    """
    check_header(path, list(schema))
    names = list(usecols) if usecols is not None else list(schema)
    unknown = set(names) - set(schema)
    if unknown:
        raise ValueError(f"usecols {sorted(unknown)} are not columns of {path.name}")
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types={c: _ARROW[schema[c]] for c in names}, include_columns=names,
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as err:
        raise _diagnose(path, schema, str(err)) from None
    if table.num_rows == 0:
        raise FlexBenchError(f"{path}: no data rows (only the header); the file is truncated or was "
                             f"written empty. Download or generate it again.")
    for col in (c for c in names if schema[c] == "num" and table.column(c).null_count):
        line = int(np.flatnonzero(table.column(col).is_null().to_numpy(zero_copy_only=False))[0]) + 2
        raise FlexBenchError(f"{path}, line {line}, column {col!r}: empty value, expected a number")
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    for col in names:
        frame[col] = _finish(path, col, frame[col], schema[col])
    return frame


def _finish(path: Path, col: str, values: pd.Series, kind: str) -> pd.Series:
    if kind == "int" and values.isna().any():
        line = int(np.flatnonzero(values.isna().to_numpy())[0]) + 2
        raise FlexBenchError(f"{path}, line {line}, column {col!r}: empty value, expected an integer")
    if kind == "intlike":
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isfinite(arr) & (arr != np.floor(arr))
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 2
            raise FlexBenchError(f"{path}, line {line}, column {col!r}: value {arr[bad][0]!r} "
                                 f"is not a whole number, expected an integer (written as int or float)")
        return pd.array(arr, dtype="Float64").astype("Int64")
    return values


def _diagnose(path: Path, schema: Schema, arrow_message: str) -> FlexBenchError:
    """Find the first offending line of ``path`` (slow path, only after a failure)."""
    cols = list(schema)
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            line = reader.line_num
            if len(row) != len(cols):
                what = "the line is truncated" if len(row) < len(cols) else "the line has extra fields"
                return FlexBenchError(f"{path}, line {line}: {len(row)} fields, expected {len(cols)} "
                                      f"({', '.join(cols)}); {what}")
            for col, value in zip(cols, row, strict=True):
                if value != "" and not _parses(value, schema[col]):
                    return FlexBenchError(f"{path}, line {line}, column {col!r}: value {value!r}, "
                                          f"expected {'an integer' if schema[col] != 'float' else 'a number'}")
    return FlexBenchError(f"{path}: could not be parsed ({arrow_message})")


def _parses(value: str, kind: str) -> bool:
    if kind == "str":
        return True
    try:
        number = float(value)
    except ValueError:
        return False
    return kind in ("float", "num") or (kind == "intlike" and number == int(number)) or (kind == "int" and value.lstrip("-").isdigit())


def read_dat(path: Path, names: Sequence[str], dtypes: Mapping[str, str], *, encoding: str) -> pd.DataFrame:
    """Read a MovieLens ``::``-separated file without header using the C engine.

    ``::`` is a two-character separator, which only pandas' slow Python engine
    accepts; the bytes are rewritten to a single unit-separator byte (``\\x1f``,
    never present in the files) and parsed by the C engine with explicit dtypes.
    """
    raw = path.read_bytes()
    if not raw.strip():
        raise FlexBenchError(f"{path}: the file is empty; expected lines like {'::'.join(names)}")
    if b"\x1f" in raw:
        raise FlexBenchError(f"{path}: contains a 0x1F control byte; not a MovieLens .dat file")
    text = raw.replace(b"::", b"\x1f")
    n_lines = text.count(b"\n") + (0 if text.endswith(b"\n") else 1)
    expected = len(names) - 1
    if text.count(b"\x1f") != expected * n_lines:
        for number, line in enumerate(text.split(b"\n")[:n_lines], start=1):
            fields = line.count(b"\x1f") + 1
            if fields != len(names):
                raise FlexBenchError(f"{path}, line {number}: {fields} fields, expected "
                                     f"{len(names)} ({'::'.join(names)}); the line is truncated or malformed")
    try:
        return pd.read_csv(io.BytesIO(text), sep="\x1f", header=None, names=list(names), dtype=dict(dtypes),
                           encoding=encoding, quoting=csv.QUOTE_NONE, engine="c", keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as err:
        _dat_error(path, text, names, dtypes, encoding, err)


def _dat_error(path: Path, text: bytes, names: Sequence[str], dtypes: Mapping[str, str], encoding: str,
               err: Exception) -> NoReturn:
    for number, raw_line in enumerate(text.split(b"\n"), start=1):
        fields = raw_line.decode(encoding, errors="replace").split("\x1f")
        for name, value in zip(names, fields, strict=False):
            if dtypes.get(name, "str").startswith("int") and not value.strip().lstrip("-").isdigit():
                raise FlexBenchError(f"{path}, line {number}, field {name!r}: value {value!r}, "
                                     f"expected an integer") from err
    raise FlexBenchError(f"{path}: could not be parsed ({err})") from err


def _show(value: object) -> str:
    """A value as the file spells it (no ``np.float64(...)`` wrapper)."""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    return repr(value)


def check_values(path: Path, frame: pd.DataFrame, column: str, ok: np.ndarray, expected: str, *,
                 first_line: int = 2, where: str = "line", kind: str = "column") -> None:
    """Raise naming the first line of ``frame`` (row 0 = line ``first_line``) where ``ok`` is False.

    ``where`` is ``record`` for files whose records may span lines; ``kind`` is
    ``field`` for the header-less MovieLens files.
    """
    bad = ~np.asarray(ok, dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FlexBenchError(f"{path}, {where} {i + first_line}, {kind} {column!r}: value "
                             f"{_show(frame[column].iloc[i])}, expected {expected}")


def check_ids(path: Path, frame: pd.DataFrame, columns: Sequence[str], **where: object) -> None:
    """Integer ID ``columns`` must be >= 0."""
    for col in (c for c in columns if c in frame):
        ids = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        check_values(path, frame, col, np.isnan(ids) | (ids >= 0), "an ID >= 0", **where)


def check_times(path: Path, frame: pd.DataFrame, column: str, **where: object) -> None:
    """Present values of ``column`` must be Unix seconds within :data:`PLAUSIBLE_TIME`."""
    if column not in frame:
        return
    t = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    lo, hi = PLAUSIBLE_TIME
    check_values(path, frame, column, np.isnan(t) | ((t >= lo) & (t < hi)),
                 "Unix seconds between 1990 and 2100", **where)


def drop_duplicates(path: Path, frame: pd.DataFrame, keys: Sequence[str], what: str = "rows", *,
                    ignore: Sequence[str] = ()) -> tuple[pd.DataFrame, str | None]:
    """Keep the first row of each ``keys`` in file order; the note counts the rows dropped and how many conflicted.

    A dropped row *conflicts* when its other columns (but ``ignore``, e.g. a row
    ID) differ from every earlier row of its key (an exact repeat does not). No
    duplicates: ``frame`` itself and ``None``.
    """
    dup = frame.duplicated(list(keys), keep="first").to_numpy()
    if not dup.any():
        return frame, None
    repeat = frame.duplicated([c for c in frame.columns if c not in ignore], keep="first").to_numpy()
    conflicting = int((dup & ~repeat).sum())
    note = (f"{path.name}: {int(dup.sum())} duplicate ({', '.join(keys)}) {what} dropped, {conflicting} "
            f"conflicting (other values than the first); kept the first of each in file order")
    return frame.loc[~dup].reset_index(drop=True), note
