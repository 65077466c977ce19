"""Loaders for the Amazon Shopping Queries dataset (ESCI; Reddy et al., 2022).

``<root>/`` (or ``<root>/shopping_queries_dataset/``) holds
``shopping_queries_dataset_examples.parquet`` (``example_id, query, query_id,
product_id, product_locale, esci_label, small_version, large_version, split``)
and ``shopping_queries_dataset_products.parquet`` (``product_id,
product_title, product_description, product_bullet_point, product_brand,
product_color, product_locale``), joined on ``(product_locale, product_id)``.

Checked on load: column types (IDs and version flags integers, the rest text),
IDs >= 0, labels in E/S/C/I, splits train/test, at least one judgement left
after the locale and Task-1 filters, every judged product in the catalogue.
Duplicate ``(query_id, product_id)`` judgements keep the first in file order (a
counted repair: two candidates with one ID would break every instance).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flexbench.datasets._io import drop_duplicates, require_file
from flexbench.errors import FlexBenchError

EXAMPLES_FILE = "shopping_queries_dataset_examples.parquet"
PRODUCTS_FILE = "shopping_queries_dataset_products.parquet"
EXAMPLE_COLUMNS = ("example_id", "query", "query_id", "product_id", "product_locale", "esci_label",
                   "small_version", "large_version", "split")
PRODUCT_COLUMNS = ("product_id", "product_title", "product_description", "product_bullet_point",
                   "product_brand", "product_color", "product_locale")
LABELS = frozenset("ESCI")
INT_COLUMNS = frozenset({"example_id", "query_id", "small_version", "large_version"})
HINT = "run `flexbench data fetch esci` or `flexbench data sample esci`"


def data_dir(root: Path) -> Path:
    """Locate the folder holding the examples parquet under ``root``."""
    root = Path(root)
    for cand in (root / "shopping_queries_dataset", root / "esci", root):
        if (cand / EXAMPLES_FILE).is_file():
            return cand
    raise FlexBenchError(f"no ESCI data under {root} (looked for {EXAMPLES_FILE}); {HINT}")


def _read(path: Path, columns: tuple[str, ...], filters: list | None = None) -> pd.DataFrame:
    require_file(path, HINT)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise FlexBenchError(f"{path}: not a readable parquet file ({err}); it is truncated or corrupt, "
                             f"download it again") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise FlexBenchError(f"{path}: column(s) {missing} missing; expected {list(columns)}")
    for col in columns:
        kind = schema.field(col).type
        integer = pa.types.is_integer(kind) or pa.types.is_boolean(kind)
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or str(kind) == "string_view"
        if col in INT_COLUMNS and not integer:
            raise FlexBenchError(f"{path}: column {col!r} has type {kind}, expected an integer"
                                 f"{' (0/1)' if col.endswith('_version') else ''}")
        if col not in INT_COLUMNS and not text:
            raise FlexBenchError(f"{path}: column {col!r} has type {kind}, expected text")
    try:
        return pq.read_table(path, columns=list(columns), filters=filters).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise FlexBenchError(f"{path}: could not be read ({err}); download it again") from None


def load_examples(path: Path, *, locale: str | None = "us", small_version: bool = True) -> pd.DataFrame:
    """Judgements, filtered to ``locale`` and the reduced (Task 1) set (``small_version == 1``)."""
    filters = []
    if locale is not None:
        filters.append(("product_locale", "=", locale))
    if small_version:
        filters.append(("small_version", "=", 1))
    frame = _read(Path(path), EXAMPLE_COLUMNS, filters or None)
    if frame.empty:
        raise FlexBenchError(f"{path}: no judgements with product_locale {locale!r}"
                             f"{' and small_version 1' if small_version else ''}; expected the official file")
    for col in ("example_id", "query_id"):
        bad_id = frame[col].to_numpy() < 0
        if bad_id.any():
            row = frame[bad_id].iloc[0]
            raise FlexBenchError(f"{path}, example_id {row['example_id']}, column {col!r}: {row[col]}, "
                                 f"expected an ID >= 0")
    bad = ~frame["esci_label"].isin(LABELS)
    if bad.any():
        row = frame[bad].iloc[0]
        raise FlexBenchError(f"{path}, example_id {row['example_id']}, column 'esci_label': "
                             f"{row['esci_label']!r}, expected one of E, S, C, I")
    splits = set(frame["split"].unique())
    if not splits <= {"train", "test"}:
        raise FlexBenchError(f"{path}, column 'split': values {sorted(splits)}, expected train/test")
    return frame.reset_index(drop=True)


def load_products(path: Path, *, locale: str | None = "us") -> pd.DataFrame:
    """Product catalogue rows of ``locale``."""
    filters = [("product_locale", "=", locale)] if locale is not None else None
    return _read(Path(path), PRODUCT_COLUMNS, filters).reset_index(drop=True)


def load_esci(root: Path, *, locale: str = "us", small_version: bool = True,
              repairs: list[str] | None = None) -> pd.DataFrame:
    """Examples joined with products on ``(product_locale, product_id)``; every example must match.

    Duplicate judgements are dropped (first kept); the note goes to ``repairs``.
    """
    folder = data_dir(root)
    examples, note = drop_duplicates(folder / EXAMPLES_FILE,
                                     load_examples(folder / EXAMPLES_FILE, locale=locale, small_version=small_version),
                                     ("query_id", "product_id"), "judgements", ignore=("example_id",))
    if note and repairs is not None:
        repairs.append(note)
    products = load_products(folder / PRODUCTS_FILE, locale=locale)
    if products.duplicated(["product_locale", "product_id"]).any():
        dup = products[products.duplicated(["product_locale", "product_id"])].iloc[0]
        raise FlexBenchError(f"{folder / PRODUCTS_FILE}: product {dup['product_id']!r} "
                             f"({dup['product_locale']}) appears twice")
    joined = examples.merge(products, how="left", on=["product_locale", "product_id"], indicator=True)
    orphan = joined["_merge"] == "left_only"
    if orphan.any():
        row = joined[orphan].iloc[0]
        raise FlexBenchError(f"{folder / EXAMPLES_FILE}: example {row['example_id']} names product "
                             f"{row['product_id']!r} ({row['product_locale']}) that is not in {PRODUCTS_FILE}")
    return joined.drop(columns="_merge")


def item_text(row: pd.Series) -> str:
    """Product text (paper Appendix E); missing fields are left out.

    Text::

        Product title: <product_title>
        Product description: <product_bullet_point, else product_description>
        Brand: <product_brand>
        Color: <product_color>
    """
    desc = row["product_bullet_point"] if isinstance(row["product_bullet_point"], str) and \
        row["product_bullet_point"].strip() else row["product_description"]
    parts = (("Product title", row["product_title"]), ("Product description", desc),
             ("Brand", row["product_brand"]), ("Color", row["product_color"]))
    return "\n".join(f"{k}: {' '.join(v.split())}" for k, v in parts if isinstance(v, str) and v.strip())
