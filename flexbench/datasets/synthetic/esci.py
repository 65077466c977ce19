"""Synthetic Amazon ESCI (Shopping Queries) in the official two-parquet layout.

Products belong to categories; each has a brand, a colour and a *variant* (size, model,
compatibility: :data:`VARIANTS`), and a title that states the variant only sometimes
(:data:`SHOW`): as on Amazon, what decides a grade is often on the product page, not in the
title the ranker reads. A query names a category and, sometimes, a brand, a variant and/or a
colour. Its judged products are what a search engine returned for it (about 44,
:data:`JUDGED_MEAN`), mostly products of the query's category that look alike in text, picked
with a bias to the query's attributes (:data:`ENGINE_BIAS`: the engine reads the attributes),
plus look-alike accessories, a sibling category, complements and a few off-category results.
Grades follow the ESCI guidelines:

* E (exact): the category with every constraint of the query satisfied;
* S (substitute): the category with a constraint violated (a variant that does not fit, e.g. a
  phone case for another phone, is I), or a sibling category;
* C (complement): a product of a complementary category;
* I (irrelevant): look-alike accessories, off-category results, non-fitting variants.

Label shares and judged products per query match the public data
(:mod:`.reference_stats`); no label is flipped: the grades are exact functions of product
attributes, some of which the text does not show. ``small``: ~260 US queries plus Spanish
and Japanese rows for the locale filter, ~80% in the reduced set (``small_version == 1``),
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
# category -> variants (size, model, fit); "fit" categories grade a wrong variant I, the others S.
VARIANTS = {
    "wireless earbuds": ("for iphone", "for android", "for running", "for gaming"),
    "over-ear headphones": ("noise cancelling", "studio monitor", "for kids", "for gaming"),
    "running shoes": ("size 8", "size 9", "size 10", "size 11"),
    "trail shoes": ("size 8", "size 9", "size 10", "size 11"),
    "coffee maker": ("single serve", "12 cup", "drip", "pour over"),
    "espresso machine": ("manual", "automatic", "capsule", "with grinder"),
    "phone case": ("iphone 13", "iphone 14", "galaxy s22", "pixel 7"),
    "yoga mat": ("6mm", "extra thick", "travel", "non slip"),
    "backpack": ("15 inch laptop", "for kids", "hiking 40l", "anti theft"),
    "desk lamp": ("led", "clip on", "with usb port", "dimmable"),
    "kids toothbrush": ("ages 2-4", "ages 5-8", "soft bristle", "battery powered"),
    "dog leash": ("small dog", "large dog", "retractable", "hands free"),
}
FIT = frozenset({"running shoes", "trail shoes", "phone case", "kids toothbrush"})
LOOKALIKE = ("replacement parts", "cleaning kit", "storage bag", "decal stickers")
COLORS = ("black", "white", "blue", "red", "grey", "green", "pink")
FEATURES = ("lightweight", "waterproof", "durable", "compact", "premium", "ergonomic", "eco-friendly")
# What a product's text shows: P(title states the variant), P(brand field), P(colour field).
SHOW = {"variant": 0.15, "brand": 0.5, "color": 0.35}
# P(the query names a brand, a variant, a colour).
ASK = {"brand": 0.1, "variant": 0.2, "color": 0.05}
# The engine's preference for products matching a named attribute (weight x factor when it matches).
ENGINE_BIAS = 8.0
# A product of the query's category that, unseen in its text, does not do what the category promises
# (wired "earbuds", a tablet "phone case", a towel sold as a "yoga mat"): P(misfit) and P(I | misfit), else S.
MISFIT = 0.2
MISFIT_IRRELEVANT = 0.3
# Keyword-stuffed titles (the category named twice): P for look-alikes and misfits, as sellers of weaker
# matches do; regular products never stuff.
STUFFED = 0.6
# P(a fitting product's title is brand + model number, never naming the category), as brand listings are.
MODEL_TITLES = 0.55
# Judged products per query: lognormal with this mean (the public data: about 44), clipped to [8, 120].
JUDGED_MEAN = 44
# Shares of a query's judged products by kind (the rest are the query's own category).
KIND_SHARES = {"lookalike": 0.07, "sibling": 0.05, "complement": 0.05, "off": 0.02}
SIZES = {"small": (260, 30), "full": (2_600, 300)}


def write_esci(out: Path, scale: str = "small", seed: int = 0) -> Path:
    """Write the examples and products parquet files under ``<out>/`` and return it."""
    n_queries, n_foreign = SIZES[scale]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 3])
    products = _products(rng, per_category=48 if scale == "small" else 480)
    examples = _examples(products, n_queries, rng, "us")
    examples += _examples(products, n_foreign, rng, "es") + _examples(products, n_foreign // 2, rng, "jp")
    _write_products(folder / PRODUCTS_FILE, products)
    _write_examples(folder / EXAMPLES_FILE, examples)
    return folder


def _pid(rng: np.random.Generator) -> str:
    return "B0" + "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"), 8))


def _product(rng: np.random.Generator, locale: str, cat: str, kind: str, brands: tuple[str, ...], k: int) -> dict:
    """One product: true attributes, and a text that shows each only with its :data:`SHOW` probability."""
    brand, color = brands[k % len(brands)], COLORS[rng.integers(len(COLORS))]
    feat = FEATURES[rng.integers(len(FEATURES))]
    variants = VARIANTS.get(cat, ("",))
    variant = variants[rng.integers(len(variants))]
    shown = {name: bool(rng.random() < p) for name, p in SHOW.items()}
    r = rng.random()
    misfit = "I" if r < MISFIT * MISFIT_IRRELEVANT else "S" if r < MISFIT else None
    noun = f"{cat} {LOOKALIKE[k % len(LOOKALIKE)]}" if kind == "lookalike" else cat
    if (kind == "lookalike" or misfit) and rng.random() < STUFFED:
        title = f"{cat.title()} {brand} {noun.title()}, {feat.title()} {cat.title()} for Everyday Use"
    elif kind == "product" and not misfit and rng.random() < MODEL_TITLES:   # brand listings: a model number
        title = f"{brand} {feat.title()} {rng.choice(list('QXZR'))}{rng.integers(100, 999)}"
    else:
        title = f"{brand} {feat.title()} {noun.title()}"
    if shown["variant"] and variant:
        title += f", {variant.title()}"
    if shown["color"] and rng.random() < 0.5:
        title += f", {color.title()}"
    return {
        "product_id": _pid(rng), "product_locale": locale, "category": cat, "kind": kind,
        "brand": brand, "color": color, "variant": variant, "misfit": misfit, "product_title": title,
        "product_description": None if k % 3 else f"<p>A {feat} {noun} by {brand}.</p>",
        "product_bullet_point": None if k % 7 == 3 else f"{feat.upper()} DESIGN: built to last\nEVERYDAY USE",
        "product_brand": brand if shown["brand"] else None,
        "product_color": color.title() if shown["color"] else None,
    }


def _products(rng: np.random.Generator, per_category: int) -> list[dict]:
    products = []
    for cat in list(CATALOG) + list(EXTRA):
        brands = CATALOG[cat][2] if cat in CATALOG else ("AmazonBasics", "Generic", "Belkin")
        n = per_category if cat in CATALOG else max(3, per_category // 6)
        for locale in ("us", "es", "jp"):
            m = n if locale == "us" else max(2, n // 4)
            products += [_product(rng, locale, cat, "product", brands, k) for k in range(m)]
            if cat in CATALOG:
                products += [_product(rng, locale, cat, "lookalike", brands, k) for k in range(max(2, m // 6))]
    return products


def _grade(p: dict, cat: str, ask: dict) -> str:
    """ESCI grade of product ``p`` for a query on ``cat`` naming the attributes in ``ask`` (module docstring)."""
    if p["kind"] == "lookalike":
        return "I"
    if p["category"] != cat:
        return "S" if p["category"] == CATALOG[cat][0] else "C" if p["category"] in CATALOG[cat][1] else "I"
    if (ask["variant"] and p["variant"] != ask["variant"] and cat in FIT) or p["misfit"] == "I":
        return "I"
    if p["misfit"] == "S":
        return "S"
    return "E" if all(v is None or p[k] == v for k, v in ask.items()) else "S"


def _engine_pick(pool: list[dict], n: int, ask: dict, rng: np.random.Generator) -> list[dict]:
    """``n`` products of ``pool`` without replacement, each attribute named in ``ask`` favoured by :data:`ENGINE_BIAS`."""
    if n <= 0 or not pool:
        return []
    w = np.ones(len(pool))
    for key, value in ask.items():
        if value is not None:
            w *= np.where([p[key] == value for p in pool], ENGINE_BIAS, 1.0)
    idx = rng.choice(len(pool), min(n, len(pool)), replace=False, p=w / w.sum())
    return [pool[i] for i in idx]


def _examples(products: list[dict], n_queries: int, rng: np.random.Generator, locale: str) -> list[dict]:
    by: dict[tuple[str, str], list[dict]] = {}
    for p in products:
        if p["product_locale"] == locale:
            by.setdefault((p["category"], p["kind"]), []).append(p)
    rows: list[dict] = []
    base_qid = {"us": 0, "es": 500_000, "jp": 900_000}[locale]
    sigma = 0.45
    for q in range(n_queries):
        cat = list(CATALOG)[rng.integers(len(CATALOG))]
        sibling, complements, brands = CATALOG[cat]
        ask = {"brand": brands[rng.integers(len(brands))] if rng.random() < ASK["brand"] else None,
               "variant": VARIANTS[cat][rng.integers(4)] if rng.random() < ASK["variant"] else None,
               "color": COLORS[rng.integers(len(COLORS))] if rng.random() < ASK["color"] else None}
        text = " ".join(x for x in (ask["brand"] and ask["brand"].lower(), cat, ask["variant"], ask["color"]) if x)
        n = int(np.clip(round(np.exp(rng.normal(np.log(JUDGED_MEAN) - sigma ** 2 / 2, sigma))), 8, 120))
        counts = rng.multinomial(n, [*KIND_SHARES.values(), 1 - sum(KIND_SHARES.values())])
        others = [p for (c, kind), ps in by.items() if kind == "product" and c not in (cat, sibling, *complements)
                  for p in ps]
        comps = [p for c in complements for p in by.get((c, "product"), [])]
        judged = (_engine_pick(by.get((cat, "lookalike"), []), counts[0], ask, rng)
                  + _engine_pick(by.get((sibling, "product"), []), counts[1], ask, rng)
                  + _engine_pick(comps, counts[2], ask, rng) + _engine_pick(others, counts[3], ask, rng)
                  + _engine_pick(by.get((cat, "product"), []), counts[4], ask, rng))
        small = bool(rng.random() < 0.8)
        split = "test" if rng.random() < 0.3 else "train"
        for p in judged:
            rows.append({"query": text, "query_id": base_qid + q, "product_id": p["product_id"],
                         "product_locale": locale, "esci_label": _grade(p, cat, ask), "small_version": int(small),
                         "large_version": 1, "split": split})
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
