"""``flexbench data prepare``: raw files -> instances + need labels in the prepared layout.

:func:`prepare` loads a dataset's official files (or the bundled synthetic
sample), builds instances as SPEC section 2 says, embeds the item texts with
the frozen encoder (cached), computes the labels of every need of the dataset
and writes everything with :func:`flexbench.prepared.write_prepared` (which
records the data fingerprint). :func:`prepare_sample` is what
:func:`flexbench.catalog.open_dataset` calls on a fresh clone.

KuaiRec variants: ``sparse`` (default) stores the 10% sparse view as the
observable interactions; ``dense`` (``kuairec-dense``) stores the whole dense
small matrix there, for dense training-time labels (paper Table 9). Instances
(histories from the sparse view) and labels are identical in both. Both also
store KuaiRec's organic log (``organic.parquet``: the big matrix of the users
outside the validation and test splits) and record ``positive_engagement``
(:data:`KUAIREC_COMPLETE_PLAY`) in the config: every video of the small matrix was
shown to every user, so there a view says nothing about taste and a complete play
(watch ratio >= 1) does.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from flexbench.datasets import sources
from flexbench.datasets.search import build_search, query_table
from flexbench.datasets.sequential import BuildConfig, build_sequential
from flexbench.embeddings import DEFAULT_ENCODER, embed_texts
from flexbench.errors import FlexBenchError
from flexbench.instances import PROTOCOL_VERSION, InstanceSizes, rng_for
from flexbench.locks import (
    clear_marker,
    dataset_lock,
    read_marker,
    remove_leftovers,
    replace_dir,
    write_marker,
)
from flexbench.paths import cache_dir as default_cache_dir
from flexbench.paths import prepared_dir
from flexbench.prepared import PreparedDataset, labels_frame, write_prepared
from flexbench.vocabulary import LABELLED_NEEDS, PAPER_DATASETS

DATASETS = PAPER_DATASETS
KUAIREC_COMPLETE_PLAY = 1.0
SAMPLE_NAMES = {"kuairec": ("kuairec", "sparse"), "kuairec-dense": ("kuairec", "dense"),
                "ml-1m": ("ml-1m", "sparse"), "esci": ("esci", "sparse")}


@dataclass(frozen=True)
class PrepareConfig(InstanceSizes):
    """Settings of one prepare run (CLI flags map onto these fields; sizes: :class:`InstanceSizes`)."""

    dataset: str
    variant: str = "sparse"
    encoder: str = DEFAULT_ENCODER
    sparsity: float = 0.1
    build: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise FlexBenchError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.variant not in ("sparse", "dense"):
            raise FlexBenchError(f"variant must be 'sparse' or 'dense', got {self.variant!r}")
        if self.variant == "dense" and self.dataset != "kuairec":
            raise FlexBenchError("the dense variant exists for kuairec only")
        if min(self.n_train, self.n_valid, self.n_test) < 0 or self.k < 2:
            raise FlexBenchError("instance counts must be >= 0 and k >= 2")
        if not 0 < self.sparsity <= 1:
            raise FlexBenchError(f"--sparsity must lie in (0, 1], got {self.sparsity}")
        try:
            self.build_config()
        except (TypeError, ValueError) as err:
            raise FlexBenchError(f"instance-construction options {self.build}: {err}") from None

    @property
    def name(self) -> str:
        """Prepared directory name: ``kuairec-dense`` for the dense variant, else the dataset."""
        return "kuairec-dense" if self.variant == "dense" else self.dataset

    def build_config(self) -> BuildConfig:
        """The instance-construction part of this config."""
        return BuildConfig(**self.sizes(), **self.build)


@dataclass
class Timings:
    """Wall-clock seconds per phase of a prepare run."""

    load: float = 0.0
    embed: float = 0.0
    build: float = 0.0
    write: float = 0.0


def bundled_sample_dir(dataset: str) -> Path:
    """``data/sample/<dataset>`` of the source tree, or a freshly generated copy in the cache."""
    bundled = Path(__file__).resolve().parents[2] / "data" / "sample" / dataset
    if bundled.is_dir() and any(bundled.iterdir()):
        return bundled
    from flexbench.datasets.synthetic import writer

    target = default_cache_dir() / "samples" / dataset
    if not target.is_dir():  # written aside and renamed: a concurrent writer's copy is never half there
        tmp = target.with_name(f".{dataset}.tmp-{os.getpid()}")
        writer(dataset)(tmp, "small", 0)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def source_digest(source_dir: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``source_dir`` (the raw sample files).

    Recorded as ``config.source_digest`` when a bundled sample is prepared, so a
    prepared sample whose generator or files changed since is prepared again
    (:func:`sample_is_current`); the bundled samples are a few MB (tens of ms).
    """
    digest = hashlib.sha256()
    root = Path(source_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def sample_is_current(dataset: PreparedDataset) -> bool:
    """False for a dataset prepared from a bundled sample whose files have changed since (or never recorded)."""
    config = dataset.meta.get("config", {})
    if not config.get("sample"):
        return True
    recorded = config.get("source_digest")
    return recorded is not None and recorded == source_digest(bundled_sample_dir(dataset.meta.get("dataset",
                                                                                                  dataset.name)))


def prepare(cfg: PrepareConfig, raw_dir: Path | None, out_root: Path, *, cache: Path | None = None,
            console: Console | None = None, timings: Timings | None = None, wait: bool = False) -> PreparedDataset:
    """Prepare ``cfg.dataset`` from ``raw_dir`` (bundled sample when ``None``) into ``out_root/<name>``.

    Holds the dataset's lock (:func:`flexbench.locks.dataset_lock`): a second
    prepare of the same name is refused with the running one's pid, or waits
    (``wait``). Everything is written into ``out_root/.<name>.tmp-<pid>`` and
    moved into place when complete (:func:`flexbench.locks.replace_dir`), so a
    reader sees the old dataset or the new one, never a mix. An error leaves the
    old dataset untouched (and says so); an interrupted prepare (Ctrl-C, ``kill``)
    leaves a marker that makes readers refuse the dataset until it is rerun.
    """
    console = console or Console(stderr=True)
    lock = dataset_lock(Path(out_root), cfg.name)
    with lock.exclusive(wait=wait, on_wait=console.print, on_stale=console.print):
        return _prepare_locked(cfg, raw_dir, Path(out_root), cache=cache, console=console,
                               timings=timings if timings is not None else Timings())


def rerun_command(cfg: PrepareConfig, raw_dir: Path | None, out_root: Path | None = None) -> str:
    """The ``flexbench data prepare`` command line that repeats ``cfg`` (options left at defaults omitted)."""
    parts = ["flexbench", "data", "prepare", cfg.name]
    if raw_dir is not None:
        parts += ["--raw-dir", shlex.quote(str(raw_dir))]
    if out_root is not None and Path(out_root).resolve() != prepared_dir().resolve():
        parts += ["--out-root", shlex.quote(str(Path(out_root).resolve()))]
    default = PrepareConfig(cfg.dataset, variant=cfg.variant)
    for name in ("encoder", "n_train", "n_valid", "n_test", "k", "history_len", "sparsity", "seed"):
        if getattr(cfg, name) != getattr(default, name):
            parts += [f"--{name.replace('_', '-')}", shlex.quote(str(getattr(cfg, name)))]
    if "filler" in cfg.build:
        parts += ["--filler", shlex.quote(str(cfg.build["filler"]))]
    return " ".join(parts)


def _prepare_locked(cfg: PrepareConfig, raw_dir: Path | None, out_root: Path, *, cache: Path | None,
                    console: Console, timings: Timings) -> PreparedDataset:
    """:func:`prepare` once the lock is held: marker, temporary directory, swap."""
    source_dir = Path(raw_dir).resolve() if raw_dir is not None else bundled_sample_dir(cfg.dataset)
    final, tmp = out_root / cfg.name, out_root / f".{cfg.name}.tmp-{os.getpid()}"
    command = rerun_command(cfg, source_dir if raw_dir is not None else None, out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out_root, cfg.name)
    write_marker(out_root, cfg.name, {"source": str(source_dir), "sample": raw_dir is None, "command": command})
    extra = {"source": str(source_dir), "sample": raw_dir is None, "command": command,
             **({"source_digest": source_digest(source_dir)} if raw_dir is None else {})}
    try:
        _build_and_write(cfg, source_dir, tmp, cache=cache, console=console, timings=timings, extra_config=extra)
        replace_dir(tmp, final)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        clear_marker(out_root, cfg.name)
        if (final / "meta.json").exists():
            console.print(f"prepare failed; {final} is unchanged")
        raise
    clear_marker(out_root, cfg.name)
    return PreparedDataset(final)


def _build_and_write(cfg: PrepareConfig, source_dir: Path, target: Path, *, cache: Path | None, console: Console,
                     timings: Timings, extra_config: dict) -> None:
    """Load, embed, build and write ``cfg``'s dataset into ``target``; repairs are printed and recorded."""
    emb_cache = Path(cache) if cache is not None else default_cache_dir() / "embeddings"
    t0 = time.perf_counter()
    with console.status(f"loading {cfg.dataset} from {source_dir}"):
        loaded = sources.load(cfg.dataset, source_dir, cfg.sparsity, cfg.seed)
    timings.load = time.perf_counter() - t0
    for note in loaded.repairs:
        console.print(f"repaired: {note}", highlight=False)
    t0 = time.perf_counter()
    item_emb = embed_texts(list(loaded.items["text"]), cfg.encoder, cache=emb_cache, description="item texts")
    timings.embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    with console.status(f"building {cfg.dataset} instances and labels"):
        if cfg.dataset == "esci":
            instances, labels, interactions, extra = _build_esci(loaded, item_emb, cfg, emb_cache, timings)
        else:
            instances, labels = build_sequential(loaded.source, item_emb, cfg.build_config())
            interactions = sources.interactions(loaded, cfg.variant, cfg.seed)
            extra = {"positive_engagement": KUAIREC_COMPLETE_PLAY} if cfg.dataset == "kuairec" else {}
    timings.build = time.perf_counter() - t0 - timings.embed * (cfg.dataset == "esci")
    t0 = time.perf_counter()
    config = {**asdict(cfg), **extra_config, "repairs": list(loaded.repairs), **extra}
    write_prepared(target, dataset=cfg.dataset, variant=cfg.variant,
                   needs=LABELLED_NEEDS[cfg.dataset], instances=instances, items=loaded.items,
                   labels=labels_frame(labels), interactions=interactions, embeddings=item_emb,
                   config=config, organic=loaded.organic, protocol_version=PROTOCOL_VERSION)
    timings.write = time.perf_counter() - t0


def _build_esci(loaded: sources.Loaded, item_emb: np.ndarray, cfg: PrepareConfig, emb_cache: Path,
                timings: Timings) -> tuple[pd.DataFrame, list, pd.DataFrame, dict]:
    queries = query_table(loaded.joined, cfg.seed)
    rng = rng_for(cfg.seed, 22)
    keep = []
    for split, n in (("train", cfg.n_train), ("valid", cfg.n_valid), ("test", cfg.n_test)):
        pool = np.flatnonzero(queries["split"].to_numpy() == split)
        keep.append(np.sort(rng.choice(pool, min(n, len(pool)), replace=False)))
    queries = queries.iloc[np.concatenate(keep)].reset_index(drop=True)
    t0 = time.perf_counter()
    query_emb = embed_texts(list(queries["query"]), cfg.encoder, cache=emb_cache, description="queries")
    timings.embed += time.perf_counter() - t0
    frame, labels, interactions = build_search(loaded.joined, queries, query_emb, loaded.items, item_emb, cfg.k,
                                                seed=cfg.seed)
    return frame, labels, interactions, {"valid_from_official_train": 0.1}


def prepare_sample(name: str, out_root: Path, *, encoder: str = DEFAULT_ENCODER,
                   cache: Path | None = None, console: Console | None = None) -> PreparedDataset:
    """Prepare the bundled sample of ``name`` (``kuairec``, ``kuairec-dense``, ``ml-1m``, ``esci``).

    Waits for another prepare of ``name`` and returns its result when that left
    a finished dataset of the current protocol (two evaluations starting on a
    fresh clone prepare the sample once).
    """
    if name not in SAMPLE_NAMES:
        raise FlexBenchError(f"no bundled sample for {name!r}; choose one of {', '.join(SAMPLE_NAMES)}")
    dataset, variant = SAMPLE_NAMES[name]
    console = console or Console(stderr=True)
    out_root = Path(out_root)
    with dataset_lock(out_root, name).exclusive(wait=True, on_wait=console.print, on_stale=console.print):
        ready = _finished(out_root, name)
        if ready is not None:
            return ready
        return _prepare_locked(PrepareConfig(dataset, variant=variant, encoder=encoder), None, out_root,
                               cache=cache, console=console, timings=Timings())


def _finished(out_root: Path, name: str) -> PreparedDataset | None:
    """The dataset ``name`` if a finished prepare of the current protocol left it (hold the lock)."""
    if read_marker(out_root, name) is not None or not (out_root / name / "meta.json").exists():
        return None
    try:
        dataset = PreparedDataset(out_root / name)
    except FlexBenchError:
        return None
    return dataset if dataset.protocol_version == PROTOCOL_VERSION and sample_is_current(dataset) else None
