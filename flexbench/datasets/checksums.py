"""Official download locations and the checksums established for them.

Only checksums that could be confirmed are recorded; ``None`` means the file
is downloaded without verification (a warning says so).

* ML-1M ``ml-1m.zip`` MD5 ``c4d9eecfca2ab87c1945afe126590906``: the value
  GroupLens publishes next to the archive (``ml-1m.zip.md5``), used unchanged by
  many independent loaders (PaddlePaddle, torchrec-style dataset configs).
* KuaiRec ``KuaiRec.zip`` MD5 ``261550d472c48eff4990fb13c0e5bcf7`` (431,964,858
  bytes): the MD5 Zenodo lists for record 18164998, quoted by several
  independent projects.
* ESCI parquet SHA-256: the Git LFS object IDs of the files in
  amazon-science/esci-data at commit 7e0e3073 (an LFS oid *is* the SHA-256 of
  the content). If upstream ever republishes the files these will no longer
  match; pass ``--no-verify`` after checking the new files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Remote:
    """One file to download: URL, local name, checksum and whether to unpack it."""

    url: str
    filename: str
    algorithm: str | None
    digest: str | None
    size: int | None = None
    unpack: bool = False


_ESCI = "https://github.com/amazon-science/esci-data/raw/main/shopping_queries_dataset/"

SOURCES: dict[str, tuple[Remote, ...]] = {
    "kuairec": (Remote("https://zenodo.org/records/18164998/files/KuaiRec.zip?download=1", "KuaiRec.zip",
                       "md5", "261550d472c48eff4990fb13c0e5bcf7", 431_964_858, unpack=True),),
    "ml-1m": (Remote("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m.zip",
                     "md5", "c4d9eecfca2ab87c1945afe126590906", unpack=True),),
    "esci": (
        Remote(_ESCI + "shopping_queries_dataset_examples.parquet", "shopping_queries_dataset_examples.parquet",
               "sha256", "4a735b693b4a424a6fc67f5be6e4c811495c488bbf66d02a602d308b2744263a", 51_286_808),
        Remote(_ESCI + "shopping_queries_dataset_products.parquet", "shopping_queries_dataset_products.parquet",
               "sha256", "25124442d064d64b26f74082d6fa09438d679efc0c183cf28d19064a2b65a265", 1_108_857_465),
    ),
}
