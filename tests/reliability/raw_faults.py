"""Fault injection over the bundled samples: one entry per raw-data fault class (issue 16, item 4).

Each :class:`Fault` edits a copy of a sample in its official layout and says what
``prepare`` must do: fail with one line matching ``expect`` (naming the file and
what was expected), or succeed with a counted repair whose note matches
``expect`` (``repair=True``; ``same_as_clean``: the prepared data equals a prepare
of the untouched sample).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
CAPTIONS = "kuairec_caption_category.csv"


@dataclass(frozen=True)
class Fault:
    """One fault: ``mutate(folder)`` edits the folder holding the dataset's files."""

    name: str
    dataset: str
    mutate: Callable[[Path], None]
    expect: str
    repair: bool = False
    same_as_clean: bool = False


def copy_sample(dataset: str, out: Path) -> Path:
    """Copy the bundled sample of ``dataset`` to ``out``; returns the raw root to prepare from."""
    shutil.copytree(SAMPLES / dataset, out)
    return out


def data_folder(dataset: str, root: Path) -> Path:
    """The folder holding the files a fault edits."""
    return {"kuairec": root / "KuaiRec 2.0" / "data", "ml-1m": root / "ml-1m", "esci": root}[dataset]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _edit_csv_field(name: str, line: int, column: int, value: str) -> Callable[[Path], None]:
    """Set field ``column`` of data line ``line`` (1 = header) of CSV ``name`` to ``value``."""
    def mutate(folder: Path) -> None:
        lines = _lines(folder / name)
        fields = lines[line - 1].rstrip("\n").split(",")
        fields[column] = value
        lines[line - 1] = ",".join(fields) + "\n"
        (folder / name).write_text("".join(lines), encoding="utf-8")
    return mutate


def _header_only(name: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        (folder / name).write_text(_lines(folder / name)[0], encoding="utf-8")
    return mutate


def _truncate_bytes(name: str, fraction: float) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        raw = (folder / name).read_bytes()
        (folder / name).write_bytes(raw[:int(len(raw) * fraction)])
    return mutate


def _unlink(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _drop_line(name: str, line: int) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        lines = _lines(folder / name)
        del lines[line - 1]
        (folder / name).write_text("".join(lines), encoding="utf-8")
    return mutate


def _append_copies(name: str, first: int, n: int, change: Callable[[str], str] = lambda s: s,
                   encoding: str = "utf-8") -> Callable[[Path], None]:
    """Append copies of data lines ``first .. first+n-1`` (1 = first line), each passed through ``change``."""
    def mutate(folder: Path) -> None:
        text = (folder / name).read_text(encoding=encoding)
        lines = text.splitlines(keepends=True)
        extra = [change(line.rstrip("\n")) + "\n" for line in lines[first - 1:first - 1 + n]]
        (folder / name).write_text(text + "".join(extra), encoding=encoding)
    return mutate


def _duplicate_caption_record(index: int) -> Callable[[Path], None]:
    """Append a second copy of caption record ``index`` (records may span lines: quoted newlines)."""
    def mutate(folder: Path) -> None:
        from flexbench.datasets.synthetic._csv import field

        with (folder / CAPTIONS).open(encoding="utf-8", newline="") as fh:
            record = list(csv.reader(fh))[index]
        with (folder / CAPTIONS).open("a", encoding="utf-8", newline="") as fh:
            fh.write(",".join(field(v) for v in record) + "\n")
    return mutate


def _last_field(value: str) -> Callable[[str], str]:
    return lambda line: line.rsplit(",", 1)[0] + "," + value


def _dat_field(index: int, value: str) -> Callable[[str], str]:
    def change(line: str) -> str:
        fields = line.split("::")
        fields[index] = value
        return "::".join(fields)
    return change


def _edit_dat_line(name: str, line: int, index: int, value: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        lines = (folder / name).read_text(encoding="latin-1").splitlines(keepends=True)
        lines[line - 1] = _dat_field(index, value)(lines[line - 1].rstrip("\n")) + "\n"
        (folder / name).write_text("".join(lines), encoding="latin-1")
    return mutate


def _reencode_utf8(name: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        (folder / name).write_text((folder / name).read_text(encoding="latin-1"), encoding="utf-8")
    return mutate


EXAMPLES = "shopping_queries_dataset_examples.parquet"


def _edit_examples(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        frame = pd.read_parquet(folder / EXAMPLES)
        change(frame).to_parquet(folder / EXAMPLES, index=False)
    return mutate


def _dup_judgements(conflicting: bool) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        us = frame[(frame["product_locale"] == "us") & (frame["small_version"] == 1)].head(12).copy()
        us["example_id"] += 1_000_000
        if conflicting:
            us["esci_label"] = us["esci_label"].map({"E": "I", "S": "E", "C": "E", "I": "E"})
        return pd.concat([frame, us], ignore_index=True)
    return change


SMALL, BIG, CATS = "small_matrix.csv", "big_matrix.csv", "item_categories.csv"
FAULTS: tuple[Fault, ...] = (
    # KuaiRec
    Fault("caption csv truncated mid-file", "kuairec", _truncate_bytes(CAPTIONS, 0.6),
          rf"{CAPTIONS}.*(truncated|no caption row)"),
    Fault("caption file missing", "kuairec", _unlink(CAPTIONS), rf"missing file .*{CAPTIONS}"),
    Fault("caption row duplicated", "kuairec", _duplicate_caption_record(2),
          rf"{CAPTIONS}, record \d+: video \d+ also in record \d+"),
    Fault("category row missing for a catalogue video", "kuairec", _drop_line(CATS, 2),
          rf"{CATS}: no row for \d+ of the \d+ catalogue videos"),
    Fault("small matrix duplicate rows (identical)", "kuairec", _append_copies(SMALL, 2, 40),
          rf"{SMALL}: 40 duplicate \(user_id, video_id\) rows.*0 conflicting", repair=True, same_as_clean=True),
    Fault("small matrix duplicate rows (conflicting)", "kuairec", _append_copies(SMALL, 2, 25, _last_field("3.5")),
          rf"{SMALL}: 25 duplicate \(user_id, video_id\) rows.*25 conflicting.*first", repair=True,
          same_as_clean=True),
    Fault("watch ratio negative", "kuairec", _edit_csv_field(SMALL, 6, 7, "-0.5"),
          rf"{SMALL}, line 6, column 'watch_ratio': value -0.5, expected a finite number in \[0, "),
    Fault("watch ratio inf", "kuairec", _edit_csv_field(SMALL, 7, 7, "inf"),
          rf"{SMALL}, line 7, column 'watch_ratio': value inf, expected a finite number"),
    Fault("watch ratio 1e308", "kuairec", _edit_csv_field(BIG, 9, 7, "1e308"),
          rf"{BIG}, line 9, column 'watch_ratio': value 1e\+308, expected a finite number in \[0, "),
    Fault("watch ratio empty", "kuairec", _edit_csv_field(SMALL, 4, 7, ""),
          rf"{SMALL}, line 4, column 'watch_ratio': empty value, expected a number"),
    Fault("big matrix header only", "kuairec", _header_only(BIG), rf"{BIG}: no data rows"),
    Fault("small matrix header only", "kuairec", _header_only(SMALL), rf"{SMALL}: no data rows"),
    Fault("negative user_id", "kuairec", _edit_csv_field(SMALL, 5, 0, "-3"),
          rf"{SMALL}, line 5, column 'user_id': value -3, expected an ID >= 0"),
    Fault("negative video_id (big matrix)", "kuairec", _edit_csv_field(BIG, 5, 1, "-8"),
          rf"{BIG}, line 5, column 'video_id': value -8, expected an ID >= 0"),
    Fault("negative timestamp", "kuairec", _edit_csv_field(SMALL, 8, 6, "-5.0"),
          rf"{SMALL}, line 8, column 'timestamp': value -5.0, expected Unix seconds"),
    Fault("timestamp in milliseconds", "kuairec", _edit_csv_field(SMALL, 8, 6, "1593948498096.0"),
          rf"{SMALL}, line 8, column 'timestamp': value 1593948498096.0, expected Unix seconds"),
    # MovieLens-1M
    Fault("UTF-8 movies.dat", "ml-1m", _reencode_utf8("movies.dat"),
          r"movies.dat: read as UTF-8", repair=True, same_as_clean=True),
    Fault("duplicate movie ID", "ml-1m", _append_copies("movies.dat", 1, 1, _dat_field(1, "Other (1999)"),
                                                        encoding="latin-1"),
          r"movies.dat, line \d+: movie 1 also on line 1"),
    Fault("duplicate ratings", "ml-1m", _append_copies("ratings.dat", 1, 30, encoding="latin-1"),
          r"ratings.dat: 30 duplicate \(user_id, movie_id\) rows.*0 conflicting", repair=True,
          same_as_clean=True),
    Fault("negative user_id (ratings)", "ml-1m", _edit_dat_line("ratings.dat", 3, 0, "-2"),
          r"ratings.dat, line 3, field 'user_id': value -2, expected an ID >= 0"),
    Fault("negative timestamp (ratings)", "ml-1m", _edit_dat_line("ratings.dat", 4, 3, "-9"),
          r"ratings.dat, line 4, field 'timestamp': value -9, expected Unix seconds"),
    # ESCI
    Fault("small_version as text", "esci", _edit_examples(lambda f: f.assign(small_version=f["small_version"].astype(str))),
          rf"{EXAMPLES}: column 'small_version' has type (string|large_string), expected an integer"),
    Fault("no us rows", "esci", _edit_examples(lambda f: f[f["product_locale"] != "us"]),
          rf"{EXAMPLES}: no judgements with product_locale 'us' and small_version 1"),
    Fault("duplicate judgements", "esci", _edit_examples(_dup_judgements(False)),
          rf"{EXAMPLES}: 12 duplicate \(query_id, product_id\) judgements.*0 conflicting", repair=True,
          same_as_clean=True),
    Fault("duplicate judgements (conflicting labels)", "esci", _edit_examples(_dup_judgements(True)),
          rf"{EXAMPLES}: 12 duplicate \(query_id, product_id\) judgements.*12 conflicting.*first", repair=True,
          same_as_clean=True),
)
