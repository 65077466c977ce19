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
* ``str``: text, missing allowed.
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

_ARROW = {"int": pa.int64(), "intlike": pa.float64(), "float": pa.float64(), "str": pa.string()}
Schema = Mapping[str, str]


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
    return kind == "float" or (kind == "intlike" and number == int(number)) or (kind == "int" and value.lstrip("-").isdigit())


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
