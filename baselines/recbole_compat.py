"""The one place where RecBole 1.2.1 is made to run on this stack, and nothing leaks out.

RecBole 1.2.1 predates NumPy 2, pandas 3 and torch >= 2.6, and it changes
process state as it goes. Nothing here happens at import time: callers wrap
every run of RecBole in :func:`recbole_session` and get RecBole's API from
:func:`recbole_api` (which alone suffices to rebuild a saved model). On exit the session restores everything it
could change. The fixes, each with the fact it answers (measured on Python
3.11, torch 2.13 CPU, NumPy 2, pandas 3):

====================================  ==============================================================
fact                                  handling (and what is restored on exit)
====================================  ==============================================================
NumPy 2 removed ``np.float_``,        the aliases are defined for the session; ``Config`` then adds
``np.complex_``, ``np.unicode_``      its own (``np.float``, ``np.int`` ...). All are removed (or
                                      reset to their NumPy 2 meaning) on exit.
``Config`` reads ``--k=v`` from       ``sys.argv`` is cut to the program name; restored.
``sys.argv`` over the config dict
``gpu_id`` sets                       the variable is restored (or removed) on exit.
``CUDA_VISIBLE_DEVICES``
``sine.py`` turns on autograd         the mode is reset right after RecBole's models are imported
anomaly detection at import (2x       (training runs at full speed) and on exit.
slower training)
torch >= 2.6 ``torch.load`` defaults  the trainer module alone sees a ``torch`` whose ``load``
to ``weights_only=True``; RecBole's   defaults to ``weights_only=False`` (its own checkpoints, written
resume/best-model loading fails       by this code); restored.
pandas 3: ``Dataset._fill_nan``'s     replaced for the session by a copy-on-write-safe version;
in-place ``fillna`` is a no-op        restored.
``./log_tensorboard`` always          the trainer gets a no-op writer (``tensorboard`` is not a
created (and ``tensorboard`` is not   dependency; ``torch.utils.tensorboard`` is stubbed only while
installed here)                       RecBole is first imported, if ``tensorboard`` is missing).
``./log`` from ``init_logger``        never called; RecBole's INFO records go to the root logger,
                                      which drops them (progress is reported by the caller).
anything else written relative to     the session runs in ``workdir`` (under
the working directory (``saved/``)    ``<data>/cache/recbole``); the old directory is restored.
``init_seed`` reseeds global RNGs     the states of ``random``, NumPy and torch (and the cuDNN
and sets cuDNN flags                  flags) are restored.
RecBole's own deprecation warnings    silenced for warnings raised from ``recbole.*`` modules, and
(``GradScaler``, read-only arrays,    NumPy 2's ``__array_wrap__`` deprecation, which RecBole's
``np.argsort`` on torch tensors)      ``Interaction.sort`` triggers (still correct on NumPy 2.4).
``recbole.quick_start`` imports ray   never imported: only ``Config``, ``create_dataset``,
(fails with recent setuptools)        ``data_preparation``, ``BERT4Rec``, ``Trainer``, ``init_seed``.
a dataset name equal to a built-in    :func:`check_dataset_name` refuses such names.
loads its settings and downloads
====================================  ==============================================================

Only ``recbole==1.2.1`` itself is pinned (installed with ``--no-deps`` by
``.ci/setup``); NumPy, pandas and torch are not held back.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
import types
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

RECBOLE_VERSION = "1.2.1"

# Names RecBole reads or sets on the numpy module; restored to their pre-session state.
_NUMPY_ALIASES: dict[str, Any] = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}
_NUMPY_TOUCHED = (*_NUMPY_ALIASES, "bool", "int", "float", "complex", "object", "str", "long", "unicode")


@dataclass(frozen=True, slots=True)
class RecBoleAPI:
    """The parts of RecBole FlexBench uses (none of them imports ray)."""

    Config: type
    create_dataset: Any
    data_preparation: Any
    init_seed: Any
    BERT4Rec: type
    Trainer: type


class _NullWriter:
    """Stands in for tensorboard's ``SummaryWriter``: accepts every call, writes nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _TorchWithFullLoad(types.ModuleType):
    """``torch`` as RecBole's trainer sees it in a session: ``load`` unpickles full checkpoints."""

    def __init__(self) -> None:
        super().__init__("torch")
        self.load = partial(torch.load, weights_only=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


def check_dataset_name(name: str) -> None:
    """Refuse a RecBole built-in dataset name (RecBole would load its settings and download it)."""
    if importlib.util.find_spec("recbole") is None:
        return
    import yaml

    props = Path(importlib.util.find_spec("recbole").origin).parent / "properties" / "dataset"
    builtin = {p.stem for p in props.glob("*.yaml")}
    builtin |= set(yaml.safe_load((props / "url.yaml").read_text()) or {})
    if name in builtin:
        raise ValueError(f"{name!r} is a RecBole built-in dataset name; use a FlexBench-specific name")


def recbole_api() -> RecBoleAPI:
    """Import RecBole's low-level API with the import-time fixes (tensorboard stub, anomaly mode).

    Building a model from a saved config needs nothing more; running RecBole
    (``Config``, datasets, training) must happen inside :func:`recbole_session`.
    """
    if importlib.util.find_spec("recbole") is None:
        from flexbench.errors import FlexBenchError

        raise FlexBenchError(f"RecBole is not installed; run `.venv/bin/python -m pip install "
                             f"-c .ci/constraints.txt --no-deps recbole=={RECBOLE_VERSION}` (or `bash .ci/setup`)")
    anomaly = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    with _tensorboard_importable():
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.sequential_recommender.bert4rec import BERT4Rec
        from recbole.trainer import Trainer
        from recbole.utils import init_seed
    # Importing the sequential models runs sine.py's set_detect_anomaly(True).
    torch.autograd.set_detect_anomaly(*anomaly)
    return RecBoleAPI(Config, create_dataset, data_preparation, init_seed, BERT4Rec, Trainer)


@contextmanager
def recbole_session(workdir: Path, *, num_threads: int | None = None) -> Iterator[RecBoleAPI]:
    """Apply every fix in the module docstring, run the body in ``workdir``, restore on exit.

    ``num_threads`` sets ``torch.set_num_threads`` for the session (on a busy
    2-core machine one thread is often faster than two).
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(_numpy_aliases())
        stack.enter_context(_attribute(sys, "argv", sys.argv[:1]))
        stack.enter_context(_environment_variable("CUDA_VISIBLE_DEVICES"))
        stack.enter_context(_anomaly_mode())
        stack.enter_context(_rng_states())
        stack.enter_context(_torch_threads(num_threads))
        stack.enter_context(_working_directory(workdir))
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", module=r"recbole(\.|$)")
        warnings.filterwarnings("ignore", message="__array_wrap__ must accept context", category=DeprecationWarning)
        api = recbole_api()
        trainer_module = importlib.import_module("recbole.trainer.trainer")
        dataset_module = importlib.import_module("recbole.data.dataset.dataset")
        stack.enter_context(_attribute(trainer_module, "get_tensorboard", lambda logger: _NullWriter()))
        stack.enter_context(_attribute(trainer_module, "torch", _TorchWithFullLoad()))
        stack.enter_context(_attribute(dataset_module.Dataset, "_fill_nan", _fill_nan_copy_on_write))
        yield api


def _fill_nan_copy_on_write(self: Any) -> None:
    """``Dataset._fill_nan`` with assignments instead of pandas-3-inert ``fillna(inplace=True)``.

    TOKEN -> 0 (``[PAD]``), FLOAT -> column mean, sequences -> empty arrays, as in RecBole.
    """
    from recbole.utils import FeatureType

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(lambda x, d=dtype: np.array([], dtype=d) if isinstance(x, float) else x)


@contextmanager
def _attribute(owner: Any, name: str, value: Any) -> Iterator[None]:
    missing = object()
    old = owner.__dict__.get(name, missing) if isinstance(owner, type) else getattr(owner, name, missing)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if old is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, old)


@contextmanager
def _numpy_aliases() -> Iterator[None]:
    saved = {name: vars(np)[name] for name in _NUMPY_TOUCHED if name in vars(np)}
    for name, value in _NUMPY_ALIASES.items():
        setattr(np, name, value)
    try:
        yield
    finally:
        for name in _NUMPY_TOUCHED:
            if name in saved:
                setattr(np, name, saved[name])
            elif name in vars(np):
                delattr(np, name)


@contextmanager
def _environment_variable(name: str) -> Iterator[None]:
    old = os.environ.get(name)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextmanager
def _anomaly_mode() -> Iterator[None]:
    old = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    try:
        yield
    finally:
        torch.autograd.set_detect_anomaly(*old)


@contextmanager
def _rng_states() -> Iterator[None]:
    py, npy, pt = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cudnn = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.random.set_rng_state(pt)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextmanager
def _tensorboard_importable() -> Iterator[None]:
    """Let ``recbole.utils`` import ``torch.utils.tensorboard`` when ``tensorboard`` is absent."""
    name = "torch.utils.tensorboard"
    if name in sys.modules or importlib.util.find_spec("tensorboard") is not None:
        yield
        return
    stub = types.ModuleType(name)
    stub.SummaryWriter = _NullWriter  # type: ignore[attr-defined]
    sys.modules[name] = stub
    try:
        yield
    finally:
        if sys.modules.get(name) is stub:
            del sys.modules[name]
