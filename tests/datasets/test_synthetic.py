"""Synthetic samples: official layout read back by the loaders, determinism, bundled copy up to date."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from flexbench.datasets import esci, kuairec, movielens
from flexbench.datasets.synthetic import writer

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "sample"


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("samples")
    for name in ("kuairec", "ml-1m", "esci"):
        writer(name)(root / name, "small", 0)
    return root


def test_kuairec_sample_reads_back_with_quirks(samples: Path) -> None:
    raw = kuairec.load_kuairec(samples / "kuairec", users=True)
    assert len(raw.small) == 15_940 and raw.small["user_id"].nunique() == 100
    assert raw.small["video_id"].nunique() == 160 and len(raw.big) > 17_000 and raw.big["user_id"].nunique() == 300
    assert raw.small["timestamp"].isna().any() and raw.small["date"].isna().any()
    assert str(raw.small["date"].dtype) == "Int64" and str(raw.small["watch_ratio"].dtype) == "float64"
    small_cells = set(zip(raw.small["user_id"], raw.small["video_id"], strict=True))
    assert not small_cells & set(zip(raw.big["user_id"], raw.big["video_id"], strict=True))
    assert raw.captions["caption"].str.contains("\r").any()
    assert raw.captions["first_level_category_id"].isna().any()
    assert any(len(t) == 2 for t in raw.captions["topic_tag"]) and any(len(f) == 2 for f in raw.categories["feat"])
    folder = kuairec.data_dir(samples / "kuairec")
    assert (folder.parent.name, folder.name) == ("KuaiRec 2.0", "data")
    naive = pd.read_csv(folder / "kuairec_caption_category.csv")        # default line terminator breaks rows
    assert len(naive) != len(raw.captions)


def test_kuairec_big_matrix_is_chosen_small_matrix_is_shown(samples: Path) -> None:
    """Big-matrix users follow their tastes (their top topic holds more of what they watch than of the whole
    log); every small-matrix user sees every video, so there the top topic holds about its catalogue share."""
    raw = kuairec.load_kuairec(samples / "kuairec")
    topic = {v: f[0] for v, f in zip(raw.categories["video_id"], raw.categories["feat"], strict=True)}

    def top_topic_lift(frame: pd.DataFrame) -> float:
        topics = frame.assign(topic=frame["video_id"].map(topic))
        overall = topics["topic"].value_counts(normalize=True)
        per_user = topics.groupby("user_id")["topic"].agg(
            lambda t: t.value_counts(normalize=True).iloc[0] - overall[t.value_counts().index[0]])
        return float(per_user.mean())

    active = raw.big.groupby("user_id").filter(lambda f: len(f) >= 30)
    chosen, shown = top_topic_lift(active), top_topic_lift(raw.small)
    assert chosen > 0.05 and shown < 0.03, (chosen, shown)


def test_movielens_sample_reads_back(samples: Path) -> None:
    raw = movielens.load_movielens(samples / "ml-1m")
    assert len(raw.ratings) == 24_000 and raw.ratings["user_id"].nunique() == 400
    assert raw.ratings.groupby("user_id").size().min() >= 20
    assert set(raw.ratings["rating"].unique()) == {1, 2, 3, 4, 5}
    assert raw.movies["title"].str.contains("é").any() and raw.users["zip"].str.contains("-").any()


def test_esci_sample_reads_back(samples: Path) -> None:
    allrows = esci.load_examples(samples / "esci" / esci.EXAMPLES_FILE, locale=None, small_version=False)
    assert set(allrows["product_locale"]) == {"us", "es", "jp"} and set(allrows["esci_label"]) == set("ESCI")
    joined = esci.load_esci(samples / "esci")
    assert (joined["small_version"] == 1).all() and set(joined["split"]) == {"train", "test"}
    assert joined.groupby("query_id").size().max() > 30                 # some queries exceed K
    assert str(joined["example_id"].dtype) == "int64"


def test_writers_are_byte_deterministic_and_bundled_sample_is_current(samples: Path, tmp_path: Path) -> None:
    writer("ml-1m")(tmp_path / "ml-1m", "small", 0)
    assert _digests(tmp_path / "ml-1m") == _digests(samples / "ml-1m")
    for name in ("kuairec", "ml-1m", "esci"):
        assert _digests(BUNDLED / name) == _digests(samples / name), \
            f"data/sample/{name} is stale: run `flexbench data sample {name}`"
