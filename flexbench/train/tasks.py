"""Training prompts in a seeded, resumable order: which (instance, need) comes at each position.

Position ``p`` (the ``p``-th prompt drawn since the start of training) maps to
epoch ``e = p // N`` and the instance ``perm_e[p % N]``, where ``perm_e`` is a
permutation of the ``N`` training instances seeded by ``(seed, e)``; under
joint training the need of position ``p`` is drawn uniformly from the needs
with a generator seeded by ``(seed, p)``. Nothing depends on earlier draws, so
resuming at the stored position continues the exact data order.

Training-time gains come from a :class:`~flexbench.train.signal.gains.GainProvider`
per need and are cached per (instance, need).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from flexbench.errors import FlexBenchError
from flexbench.repair import stable_rng
from flexbench.types import Instance, NeedSpec


class GainSource(Protocol):
    """The part of :class:`flexbench.train.signal.gains.GainProvider` used here."""

    def candidate_gains(self, instance: Instance, need: str) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class PromptTask:
    """One training prompt: the instance, the need, and training gains/variances aligned with candidates."""

    position: int
    instance: Instance
    need: NeedSpec
    gains: np.ndarray
    variances: np.ndarray
    observed: np.ndarray | None = None  # [K] True where the gain is an observed label (None: unknown)

    def optimal_ids(self) -> tuple[str, ...]:
        """Candidates by decreasing training gain, ties by item ID (the SFT target)."""
        order = sorted(range(self.instance.k), key=lambda j: (-float(self.gains[j]),
                                                               self.instance.candidate_ids[j]))
        return tuple(self.instance.candidate_ids[j] for j in order)


class TaskSampler:
    """Deterministic prompt stream over ``instances`` and ``needs`` (module docstring)."""

    def __init__(self, instances: Sequence[Instance], needs: Sequence[NeedSpec],
                 gains: Mapping[str, GainSource], seed: int = 0) -> None:
        if not instances:
            raise FlexBenchError("no training instances; check the dataset's train split")
        if not needs:
            raise FlexBenchError("no needs to train on")
        missing = [n.name for n in needs if n.name not in gains]
        if missing:
            raise ValueError(f"no gain provider for needs {missing}")
        self.instances = list(instances)
        self.needs = list(needs)
        self.gains = dict(gains)
        self.seed = seed
        self._perm: dict[int, np.ndarray] = {}
        self._cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def instance_at(self, position: int) -> Instance:
        """The instance at ``position`` of the stream."""
        n = len(self.instances)
        epoch = position // n
        if epoch not in self._perm:
            self._perm[epoch] = stable_rng("train-order", self.seed, epoch).permutation(n)
        return self.instances[int(self._perm[epoch][position % n])]

    def need_at(self, position: int) -> NeedSpec:
        """The need of ``position`` (uniform over the needs under joint training)."""
        if len(self.needs) == 1:
            return self.needs[0]
        return self.needs[int(stable_rng("train-need", self.seed, position).integers(len(self.needs)))]

    def task(self, position: int) -> PromptTask:
        """The :class:`PromptTask` at ``position``."""
        instance, need = self.instance_at(position), self.need_at(position)
        key = (instance.instance_id, need.name)
        if key not in self._cache:
            g, v = self.gains[need.name].candidate_gains(instance, need.name)
            g, v = np.asarray(g, dtype=np.float64), np.asarray(v, dtype=np.float64)
            if g.shape != (instance.k,) or v.shape != (instance.k,):
                raise ValueError(f"gain provider returned shapes {g.shape}, {v.shape} for K={instance.k}")
            mask = getattr(self.gains[need.name], "observed_mask", None)
            self._cache[key] = (g, v, None if mask is None else np.asarray(mask(instance, need.name), dtype=bool))
        g, v, observed = self._cache[key]
        return PromptTask(position, instance, need, g, v, observed)

    def tasks(self, start: int, count: int) -> list[PromptTask]:
        """``count`` consecutive tasks from ``start``."""
        return [self.task(p) for p in range(start, start + count)]
