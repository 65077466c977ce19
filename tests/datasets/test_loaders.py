"""Loaders on hand-written files in the official formats, one quirk at a time, and their errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flexbench.datasets import esci, kuairec, movielens
from flexbench.errors import FlexBenchError

HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio\n"


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_matrix_empty_time_fields_and_float_dates(tmp_path: Path) -> None:
    path = _write(tmp_path / "small_matrix.csv", HEADER +
                  "14,148,4381,6067,2020-07-05 05:27:48.378,20200705.0,1593898068.378,0.722103\n"
                  "14,183,11635,6100,,,,1.907377\n")
    frame = kuairec.load_matrix(path)
    assert len(frame) == 2
    assert str(frame["user_id"].dtype) == "int32" and str(frame["date"].dtype) == "Int64"
    assert frame["date"].iloc[0] == 20200705 and pd.isna(frame["date"].iloc[1])
    assert pd.isna(frame["timestamp"].iloc[1]) and frame["timestamp"].iloc[0] == pytest.approx(1593898068.378)
    assert frame["watch_ratio"].tolist() == [0.722103, 1.907377]


@pytest.mark.parametrize(("body", "match"), [
    ("1,2,3,4,t,20200705,1.0,0.5\n1,2,3\n", r"small_matrix.csv, line 3: 3 fields, expected 8.*truncated"),
    ("1,2,3,4,t,20200705,1.0,0.5\n1,x,3,4,t,20200705,1.0,0.5\n", r"line 3, column 'video_id': value 'x'"),
    ("1,2,3,4,t,20200705.5,1.0,0.5\n", r"line 2, column 'date'.*not a whole number"),
    (",2,3,4,t,20200705,1.0,0.5\n", r"line 2, column 'user_id': empty value"),
])
def test_matrix_errors_name_file_line_and_expectation(tmp_path: Path, body: str, match: str) -> None:
    path = _write(tmp_path / "small_matrix.csv", HEADER + body)
    with pytest.raises(FlexBenchError, match=match):
        kuairec.load_matrix(path)


def test_matrix_wrong_header_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(FlexBenchError, match="line 1: header has columns"):
        kuairec.load_matrix(_write(tmp_path / "a.csv", "user,video\n1,2\n"))
    with pytest.raises(FlexBenchError, match="empty"):
        kuairec.load_matrix(_write(tmp_path / "b.csv", ""))
    with pytest.raises(FlexBenchError, match="missing file"):
        kuairec.load_matrix(tmp_path / "none.csv")


def test_item_categories_text_lists(tmp_path: Path) -> None:
    path = _write(tmp_path / "item_categories.csv", 'video_id,feat\n0,[8]\n1,"[27, 9]"\n2,[]\n')
    assert kuairec.load_item_categories(path)["feat"].tolist() == [[8], [27, 9], []]
    with pytest.raises(FlexBenchError, match=r"line 3, column 'feat'.*expected a list"):
        kuairec.load_item_categories(_write(tmp_path / "bad.csv", "video_id,feat\n0,[8]\n1,eight\n"))


def test_captions_bare_carriage_return_unquoted_tags_and_missing_markers(tmp_path: Path) -> None:
    header = ",".join(kuairec.CAPTION_COLUMNS) + "\n"
    rows = ("0,UNKNOWN,first\rline caption,\"[cat,pet]\",1,Pets,101,Pets cats,-124,UNKNOWN\n"
            '1,cover,"comma, caption",[],-124,UNKNOWN,102,Food x,1005,hotpot\n'
            "2,UNKNOWN,,[],3,Music,-124,UNKNOWN,-124,UNKNOWN\n")
    frame = kuairec.load_captions(_write(tmp_path / "kuairec_caption_category.csv", header + rows))
    assert len(frame) == 3
    assert frame["caption"].iloc[0] == "first\rline caption"
    assert frame["topic_tag"].tolist() == [["cat", "pet"], [], []]
    assert pd.isna(frame["manual_cover_text"].iloc[0]) and frame["manual_cover_text"].iloc[1] == "cover"
    assert pd.isna(frame["first_level_category_id"].iloc[1]) and frame["first_level_category_id"].iloc[0] == 1
    assert pd.isna(frame["third_level_category_name"].iloc[0]) and pd.isna(frame["caption"].iloc[2])
    raw = kuairec.KuaiRecRaw(pd.DataFrame(), None, pd.DataFrame({"video_id": [0, 1], "feat": [[3], []]}), frame)
    items = kuairec.item_table(raw, pd.Series([0, 1]).to_numpy())
    assert items["text"].iloc[0] == "Video caption: first line caption\nCategory path: Pets > Pets cats\nVideo tag: cat, pet"
    assert items["text"].iloc[1] == "Video caption: comma, caption\nCategory path: Food x > hotpot"
    assert items["topics"].tolist() == [["3"], []]


def test_captions_truncated_row_is_an_error(tmp_path: Path) -> None:
    header = ",".join(kuairec.CAPTION_COLUMNS) + "\n"
    path = _write(tmp_path / "kuairec_caption_category.csv", header + "0,a,b,[],1,x,2,y,3,z\n1,a,b,[],1,x,2,y,3,z,extra\n")
    with pytest.raises(FlexBenchError, match=r"kuairec_caption_category.csv: line 3"):
        kuairec.load_captions(path)


def test_user_features_int_columns_written_as_floats(tmp_path: Path) -> None:
    cols = list(kuairec.USER_SCHEMA)
    row = ["0", "high_active", "0", "0", "1", "5", '"(0,10]"', "1", "0", "0", "0", "100", "61-90"]
    row += ["1.0", ""] + ["2"] * 16
    frame = kuairec.load_user_features(_write(tmp_path / "user_features.csv", ",".join(cols) + "\n" + ",".join(row) + "\n"))
    assert frame["follow_user_num_range"].iloc[0] == "(0,10]"
    assert str(frame["onehot_feat0"].dtype) == "Int64" and frame["onehot_feat0"].iloc[0] == 1
    assert pd.isna(frame["onehot_feat1"].iloc[0])


def test_item_daily_features_follow_their_header(tmp_path: Path) -> None:
    text = "video_id,date,author_id,video_type,video_duration,play_progress\n1,20200705,9,NORMAL,5966.0,0.4\n2,20200705,9,AD,,0.5\n"
    frame = kuairec.load_item_daily_features(_write(tmp_path / "item_daily_features.csv", text))
    assert frame["video_duration"].iloc[0] == 5966 and pd.isna(frame["video_duration"].iloc[1])
    assert frame["video_type"].tolist() == ["NORMAL", "AD"]


def test_movielens_separator_latin1_and_zip_as_text(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    _write(folder / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    _write(folder / "movies.dat", "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
           "661::Amélie: Part 1 (2001)::Comedy|Romance\n".encode("latin-1"))
    _write(folder / "users.dat", "1::F::1::10::02139\n2::M::56::16::55455-0001\n")
    raw = movielens.load_movielens(tmp_path)
    assert raw.ratings["rating"].tolist() == [5, 3] and str(raw.ratings["timestamp"].dtype) == "int64"
    assert raw.movies["title"].iloc[1] == "Amélie: Part 1 (2001)"
    assert raw.movies["genres"].tolist() == [["Drama"], ["Comedy", "Romance"]]
    assert raw.users["zip"].tolist() == ["02139", "55455-0001"]
    text = movielens.item_table(raw.movies)["text"].iloc[1]
    assert text == "Movie Title: Amélie: Part 1\nMovie Year: 2001\nMovie genres: Comedy, Romance"


@pytest.mark.parametrize(("body", "match"), [
    ("1::1193::5::978300760\n1::661::3\n", r"ratings.dat, line 2: 3 fields, expected 4"),
    ("1::1193::5::978300760\n1::661::x::978300760\n", r"line 2, field 'rating': value 'x'"),
    ("1::1193::7::978300760\n", r"line 1, field 'rating': 7, expected 1..5"),
])
def test_movielens_errors(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(FlexBenchError, match=match):
        movielens.load_ratings(_write(tmp_path / "ratings.dat", body))


def _esci_files(folder: Path, label: str = "E", product: str = "B01") -> None:
    pd.DataFrame({"example_id": [0, 1, 2], "query": ["red mug", "red mug", "tazas"], "query_id": [7, 7, 8],
                  "product_id": [product, "B02", "B01"], "product_locale": ["us", "us", "es"],
                  "esci_label": [label, "S", "E"], "small_version": [1, 1, 1], "large_version": [1, 1, 1],
                  "split": ["train", "train", "test"]}).to_parquet(folder / esci.EXAMPLES_FILE)
    pd.DataFrame({"product_id": ["B01", "B02", "B01"], "product_title": ["Red Mug", "Blue Mug", "Taza"],
                  "product_description": [None, "<p>blue</p>", None],
                  "product_bullet_point": ["CERAMIC\n12 oz", None, None], "product_brand": ["Acme", None, "X"],
                  "product_color": ["Red", "Blue", None], "product_locale": ["us", "us", "es"],
                  }).to_parquet(folder / esci.PRODUCTS_FILE)


def test_esci_join_on_locale_and_product(tmp_path: Path) -> None:
    _esci_files(tmp_path)
    joined = esci.load_esci(tmp_path)
    assert joined["product_title"].tolist() == ["Red Mug", "Blue Mug"]          # es row filtered out
    assert esci.item_text(joined.iloc[0]) == "Product title: Red Mug\nProduct description: CERAMIC 12 oz\nBrand: Acme\nColor: Red"
    assert esci.item_text(joined.iloc[1]) == "Product title: Blue Mug\nProduct description: <p>blue</p>\nColor: Blue"


def test_esci_errors(tmp_path: Path) -> None:
    _esci_files(tmp_path, label="X")
    with pytest.raises(FlexBenchError, match="esci_label.*expected one of E, S, C, I"):
        esci.load_esci(tmp_path)
    _esci_files(tmp_path, product="B99")
    with pytest.raises(FlexBenchError, match="B99.*not in"):
        esci.load_esci(tmp_path)
    (tmp_path / esci.PRODUCTS_FILE).write_bytes((tmp_path / esci.PRODUCTS_FILE).read_bytes()[:100])
    with pytest.raises(FlexBenchError, match="truncated or corrupt"):
        esci.load_products(tmp_path / esci.PRODUCTS_FILE)
