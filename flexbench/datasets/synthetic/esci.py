"""Synthetic Amazon ESCI (Shopping Queries) in the official two-parquet layout.

Products belong to categories with brands, colours and complementary
categories. A query names a category and sometimes a brand and/or colour;
its judged products are labelled as the ESCI guidelines define:

* E (exact): the category with every constraint of the query satisfied;
* S (substitute): the category with a constraint violated, or a sibling category;
* C (complement): a product of a complementary category;
* I (irrelevant): anything else.

About 3% of labels are flipped to another grade (annotator noise). ``small``:
~260 US queries (~18 judgements each, some over 30) plus Spanish and Japanese
rows for the locale filter, ~80% in the reduced set (``small_version == 1``),
official-style train/test split by query. ``full`` is 10x larger.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flexbench.datasets.esci import EXAMPLES_FILE, PRODUCTS_FILE

# category -> (sibling, complements, brands)
CATALOG = {
    "wireless earbuds": ("over-ear headphones", ("earbud case", "usb-c charging cable"), ("Sony", "Anker", "JBL")),
    "over-ear headphones": ("wireless earbuds", ("headphone stand", "audio cable"), ("Sony", "Bose", "JBL")),
    "running shoes": ("trail shoes", ("running socks", "shoe insoles"), ("Nike", "Asics", "Brooks")),
    "trail shoes": ("running shoes", ("running socks", "gaiters"), ("Salomon", "Merrell", "Asics")),
    "coffee maker": ("espresso machine", ("coffee filters", "coffee grinder"), ("Keurig", "Cuisinart", "Mr. Coffee")),
    "espresso machine": ("coffee maker", ("milk frother", "coffee grinder"), ("Breville", "De'Longhi", "Gaggia")),
    "phone case": ("screen protector", ("phone charger", "pop socket"), ("OtterBox", "Spigen", "Casetify")),
    "yoga mat": ("exercise mat", ("yoga blocks", "yoga strap"), ("Manduka", "Gaiam", "Liforme")),
    "backpack": ("laptop bag", ("packing cubes", "water bottle"), ("JanSport", "North Face", "Osprey")),
    "desk lamp": ("floor lamp", ("led bulbs", "extension cord"), ("TaoTronics", "BenQ", "IKEA")),
    "kids toothbrush": ("electric toothbrush", ("toothpaste for kids", "toothbrush holder"), ("Oral-B", "Colgate", "Philips")),
    "dog leash": ("dog harness", ("poop bags", "dog collar"), ("Ruffwear", "Kurgo", "PetSafe")),
}
EXTRA = ("earbud case", "usb-c charging cable", "headphone stand", "audio cable", "running socks", "shoe insoles",
         "gaiters", "coffee filters", "coffee grinder", "milk frother", "screen protector", "phone charger",
         "pop socket", "exercise mat", "yoga blocks", "yoga strap", "laptop bag", "packing cubes", "water bottle",
         "floor lamp", "led bulbs", "extension cord", "electric toothbrush", "toothpaste for kids",
         "toothbrush holder", "dog harness", "poop bags", "dog collar")
COLORS = ("black", "white", "blue", "red", "grey", "green", "pink")
FEATURES = ("lightweight", "waterproof", "durable", "compact", "premium", "ergonomic", "eco-friendly")
SIZES = {"small": (260, 30), "full": (2_600, 300)}


def write_esci(out: Path, scale: str = "small", seed: int = 0) -> Path:
    """Write the examples and products parquet files under ``<out>/`` and return it."""
    n_queries, n_foreign = SIZES[scale]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 3])
    products = _products(rng, per_category=12 if scale == "small" else 120)
    examples = _examples(products, n_queries, rng, "us")
    examples += _examples(products, n_foreign, rng, "es") + _examples(products, n_foreign // 2, rng, "jp")
    _write_products(folder / PRODUCTS_FILE, products)
    _write_examples(folder / EXAMPLES_FILE, examples)
    return folder


def _pid(rng: np.random.Generator) -> str:
    return "B0" + "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"), 8))


def _products(rng: np.random.Generator, per_category: int) -> list[dict]:
    products = []
    for cat in list(CATALOG) + list(EXTRA):
        brands = CATALOG[cat][2] if cat in CATALOG else ("AmazonBasics", "Generic", "Belkin")
        n = per_category if cat in CATALOG else max(3, per_category // 3)
        for locale in ("us", "es", "jp"):
            for k in range(n if locale == "us" else max(2, n // 4)):
                brand, color, feat = brands[k % len(brands)], COLORS[rng.integers(len(COLORS))], FEATURES[rng.integers(len(FEATURES))]
                products.append({
                    "product_id": _pid(rng), "product_locale": locale, "category": cat,
                    "product_title": f"{brand} {feat.title()} {cat.title()}, {color.title()}" + (
                        " (Pack of 2)" if k % 5 == 0 else ""),
                    "product_description": None if k % 3 else f"<p>A {feat} {cat} by {brand}.</p>",
                    "product_bullet_point": None if k % 7 == 3 else
                    f"{feat.upper()} DESIGN: {cat} built to last\nFITS EVERYDAY USE: {color} finish",
                    "product_brand": None if k % 11 == 6 else brand,
                    "product_color": None if k % 9 == 4 else color.title(),
                })
    return products


def _examples(products: list[dict], n_queries: int, rng: np.random.Generator, locale: str) -> list[dict]:
    local = [p for p in products if p["product_locale"] == locale]
    by_cat: dict[str, list[dict]] = {}
    for p in local:
        by_cat.setdefault(p["category"], []).append(p)
    rows: list[dict] = []
    base_qid = {"us": 0, "es": 500_000, "jp": 900_000}[locale]
    for q in range(n_queries):
        cat = list(CATALOG)[rng.integers(len(CATALOG))]
        sibling, complements, brands = CATALOG[cat]
        brand = brands[rng.integers(len(brands))] if rng.random() < 0.4 else None
        color = COLORS[rng.integers(len(COLORS))] if rng.random() < 0.4 else None
        text = " ".join(x for x in (brand and brand.lower(), cat, color) if x)
        judged: dict[str, str] = {}
        for p in by_cat.get(cat, []):
            ok = (brand is None or p["product_brand"] == brand) and \
                 (color is None or (p["product_color"] or "").lower() == color)
            judged[p["product_id"]] = "E" if ok else "S"
        for p in by_cat.get(sibling, [])[: int(rng.integers(2, 6))]:
            judged[p["product_id"]] = "S"
        for comp in complements:
            for p in by_cat.get(comp, [])[: int(rng.integers(0, 3))]:
                judged[p["product_id"]] = "C"
        others = [p for c, ps in by_cat.items() if c not in (cat, sibling, *complements) for p in ps]
        for i in rng.choice(len(others), min(len(others), int(rng.integers(2, 6 if q % 9 else 25))), replace=False):
            judged[others[i]["product_id"]] = "I"
        small = bool(rng.random() < 0.8)
        split = "test" if rng.random() < 0.3 else "train"
        for pid, lab in judged.items():
            if rng.random() < 0.03:
                lab = "ESCI"[rng.integers(4)]
            rows.append({"query": text, "query_id": base_qid + q, "product_id": pid, "product_locale": locale,
                         "esci_label": lab, "small_version": int(small), "large_version": 1, "split": split})
    return rows


def _write_products(path: Path, products: list[dict]) -> None:
    cols = ("product_id", "product_title", "product_description", "product_bullet_point", "product_brand",
            "product_color", "product_locale")
    table = pa.table({c: pa.array([p[c] for p in products], pa.string()) for c in cols})
    pq.write_table(table, path, compression="zstd")


def _write_examples(path: Path, rows: list[dict]) -> None:
    table = pa.table({
        "example_id": pa.array(np.arange(len(rows)), pa.int64()),
        "query": pa.array([r["query"] for r in rows], pa.string()),
        "query_id": pa.array([r["query_id"] for r in rows], pa.int64()),
        "product_id": pa.array([r["product_id"] for r in rows], pa.string()),
        "product_locale": pa.array([r["product_locale"] for r in rows], pa.string()),
        "esci_label": pa.array([r["esci_label"] for r in rows], pa.string()),
        "small_version": pa.array([r["small_version"] for r in rows], pa.int64()),
        "large_version": pa.array([r["large_version"] for r in rows], pa.int64()),
        "split": pa.array([r["split"] for r in rows], pa.string()),
    })
    pq.write_table(table, path, compression="zstd")
