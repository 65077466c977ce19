"""Training-time gains of an instance's candidates: what the reward functions see (SPEC 6).

Engagement needs (``interest``: KuaiRec watch ratio, ML-1M ``2^rating - 1``) are
only sparsely observed, so a training reward uses, per candidate:

* the observed value where the user's training interactions contain the item
  (variance 0);
* an imputation elsewhere: the critic's mean and variance (``observed+critic``),
  the critic's mean with variance 0 (``raw-critic``: the same gains, so the
  uncertainty weights of :mod:`flexbench.train.credit.uncertainty` are all 1), a
  User-/Item-KNN estimate with variance 0 (``user-knn``, ``item-knn``), or none:
  gain 0, variance 0 (``observed``: only what was observed, the rule the ML-1M
  test labels follow, where a candidate the user never rated has gain 0).

``dense`` (only on a dense variant such as ``kuairec-dense``) and ``labels`` use
the stored labels of the need, variance 0. Needs whose labels are computed from
observable data rather than from the user's own feedback (novelty: embeddings
and topics; trend: platform traffic counts; ESCI: annotated training queries)
always use their stored labels.

Imputed engagement is clipped at 0 (engagement is non-negative) and mapped to a
gain by the dataset's label formula; for ML-1M the variance goes through the
delta method, ``Var[2^v - 1] ~ (ln 2 * 2^mu)^2 * s2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset
from flexbench.types import Instance, NeedLabels

SIGNALS = ("observed+critic", "raw-critic", "user-knn", "item-knn", "observed", "dense", "labels")
ENGAGEMENT_NEEDS = frozenset({"interest"})

GainMap = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class GainProvider(Protocol):
    """Gains and their variances for an instance's candidates under a need."""

    def candidate_gains(self, instance: Instance, need: str) -> tuple[np.ndarray, np.ndarray]:
        """``(gains [K], variances [K])`` aligned with ``instance.candidate_ids``."""
        ...


class Imputer(Protocol):
    """Estimates engagement (value scale) of items the user has not been observed with."""

    def estimate(self, instance: Instance, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, variance)`` per item."""
        ...


class LabelGains:
    """The need's stored labels, variance 0."""

    def __init__(self, dataset: PreparedDataset) -> None:
        self.dataset = dataset
        self._labels: dict[str, dict[str, NeedLabels]] = {}

    def candidate_gains(self, instance: Instance, need: str) -> tuple[np.ndarray, np.ndarray]:
        if need not in self._labels:
            self._labels[need] = self.dataset.labels(need)
        labels = self._labels[need].get(instance.instance_id)
        if labels is None or labels.candidate_ids != instance.candidate_ids:
            raise FlexBenchError(
                f"dataset {self.dataset.name!r} stores no {need!r} labels for the candidates of "
                f"instance {instance.instance_id!r}; prepare the dataset again"
            )
        gains = np.asarray(labels.gains, dtype=np.float64)
        return gains, np.zeros_like(gains)

    def observed_mask(self, instance: Instance, need: str) -> np.ndarray:
        """Every stored label is a true label: all observed."""
        return np.ones(instance.k, dtype=bool)


class ObservedValues:
    """The observed training interactions as ``user -> item -> value`` (duplicates averaged)."""

    def __init__(self, dataset: PreparedDataset) -> None:
        frame = dataset.interactions("train")
        means = frame.groupby(["user_id", "item_id"], sort=False)["value"].mean()
        self._by_user: dict[str, dict[str, float]] = {}
        for (user, item), value in means.items():
            self._by_user.setdefault(str(user), {})[str(item)] = float(value)

    def of_user(self, user_id: str | None) -> dict[str, float]:
        """The user's observed ``{item_id: value}`` (empty for unknown users)."""
        return dict(self._by_user.get(str(user_id), {})) if user_id is not None else {}

    def lookup(self, user_id: str | None, item_ids: Sequence[str]) -> np.ndarray:
        """Observed values of ``item_ids`` for the user, NaN where unobserved."""
        seen = self._by_user.get(str(user_id), {}) if user_id is not None else {}
        return np.array([seen.get(i, np.nan) for i in item_ids], dtype=np.float64)


class CriticImputer:
    """Critic mean and variance given the instance's history (variance 0 without ``with_variance``)."""

    def __init__(self, critic_path: Path, with_variance: bool = True) -> None:
        from flexbench.train.signal.ensemble import load_critic_any

        self.critic = load_critic_any(critic_path)  # one critic, or a deep ensemble of them
        self.with_variance = with_variance

    def estimate(self, instance: Instance, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        from flexbench.train.signal.critic_data import context_arrays

        index = self.critic.item_index
        unknown = [i for i in item_ids if i not in index]
        if unknown:
            raise FlexBenchError(
                f"the critic does not know item(s) {unknown[:3]}; train it on this dataset "
                f"with `flexbench train critic --dataset {instance.dataset}`"
            )
        hist, eng = context_arrays(
            [[(h.item_id, h.engagement) for h in instance.history]], index, self.critic.config.history_len
        )
        n = len(item_ids)
        mean, var = self.critic.predict(
            np.repeat(hist, n, 0),
            np.repeat(eng, n, 0),
            np.array([index[i] for i in item_ids], dtype=np.int64),
        )
        return mean, (var if self.with_variance else np.zeros_like(var))


class ZeroImputer:
    """No imputation: gain 0 and variance 0 for every unobserved item (signal ``observed``)."""

    def estimate(self, instance: Instance, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(item_ids)), np.zeros(len(item_ids))


class KNNImputer:
    """User-/Item-KNN point estimates from the user's observed interactions plus the instance history."""

    def __init__(self, knn: object, observed: ObservedValues) -> None:
        self.knn = knn
        self.observed = observed

    def estimate(self, instance: Instance, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        profile = {h.item_id: h.engagement for h in instance.history} | self.observed.of_user(
            instance.user_id
        )
        mean = self.knn.predict(profile, item_ids)
        return mean, np.zeros_like(mean)


class ImputedGains:
    """Observed values where observed (variance 0), imputation elsewhere; stored labels for other needs."""

    def __init__(
        self,
        labels: LabelGains,
        observed: ObservedValues,
        make_imputer: Callable[[], Imputer],
        value_to_gain: GainMap,
    ) -> None:
        self.labels = labels
        self.observed = observed
        self._make_imputer = make_imputer
        self._imputer: Imputer | None = None
        self.value_to_gain = value_to_gain

    @property
    def imputer(self) -> Imputer:
        """The imputer, built on first use (loading a critic or fitting KNN only when needed)."""
        if self._imputer is None:
            self._imputer = self._make_imputer()
        return self._imputer

    def candidate_gains(self, instance: Instance, need: str) -> tuple[np.ndarray, np.ndarray]:
        if need not in ENGAGEMENT_NEEDS:
            return self.labels.candidate_gains(instance, need)
        ids = instance.candidate_ids
        observed = self.observed.lookup(instance.user_id, ids)
        hit = ~np.isnan(observed)
        mean, var = (
            (np.zeros(len(ids)), np.zeros(len(ids))) if hit.all() else self.imputer.estimate(instance, ids)
        )
        value = np.where(hit, observed, np.maximum(mean, 0.0))
        return self.value_to_gain(value, np.where(hit, 0.0, var))

    def observed_mask(self, instance: Instance, need: str) -> np.ndarray:
        """``[K]`` True where the candidate's training gain is an observed label rather than an imputation."""
        if need not in ENGAGEMENT_NEEDS:
            return self.labels.observed_mask(instance, need)
        return ~np.isnan(self.observed.lookup(instance.user_id, instance.candidate_ids))


def make_gain_provider(
    dataset: PreparedDataset,
    need: str,
    signal: str,
    critic_path: Path | None = None,
    *,
    knn_neighbours: int = 20,
) -> GainProvider:
    """The training-time gain provider for ``signal`` (one of :data:`SIGNALS`); see the module docstring.

    ``need`` is the training need: for an engagement need the imputer is built
    now, so a missing critic fails before training starts. The provider serves
    every need of the dataset (joint training).
    """
    if signal not in SIGNALS:
        raise FlexBenchError(f"unknown reward signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    if need not in dataset.needs:
        raise FlexBenchError(
            f"dataset {dataset.name!r} has no need {need!r}; it has {', '.join(dataset.needs)}"
        )
    labels = LabelGains(dataset)
    if signal == "dense" and dataset.variant != "dense":
        raise FlexBenchError(
            f"signal 'dense' needs a dense dataset variant (e.g. kuairec-dense); "
            f"{dataset.name!r} is {dataset.variant}"
        )
    if signal in ("dense", "labels"):
        return labels
    observed = ObservedValues(dataset)
    provider = ImputedGains(
        labels,
        observed,
        _imputer_factory(dataset, signal, critic_path, observed, knn_neighbours),
        value_to_gain(dataset.dataset),
    )
    if need in ENGAGEMENT_NEEDS:
        _ = provider.imputer
    return provider


def value_to_gain(dataset: str) -> GainMap:
    """The map from engagement value (and its variance) to the need's gain for ``dataset``."""
    if dataset == "ml-1m":
        return _exp2_gain
    return lambda value, var: (np.asarray(value, np.float64), np.asarray(var, np.float64))


def find_critics(dataset_name: str) -> list[Path]:
    """Critic checkpoints under :func:`~flexbench.train.signal.critic.critic_dir` (or one level below)."""
    from flexbench.paths import CRITIC_FILE, critic_dir

    root = critic_dir(dataset_name)
    return sorted({*root.glob(CRITIC_FILE), *root.glob(f"*/{CRITIC_FILE}")})


def default_critic_path(dataset_name: str) -> Path:
    """The directory of the one critic of ``dataset_name`` (:func:`find_critics`); raises if none or several."""
    found = find_critics(dataset_name)
    if len(found) != 1:
        what = (
            "no critic" if not found else f"{len(found)} critics ({', '.join(str(p.parent) for p in found)})"
        )
        raise FlexBenchError(
            f"found {what} for {dataset_name!r}; train one with `flexbench train critic "
            f"--dataset {dataset_name}` or pass the critic checkpoint directory explicitly"
        )
    return found[0].parent


def _exp2_gain(value: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ML-1M: ``g = 2^r - 1``; delta-method variance ``(ln 2 * 2^r)^2 * s2``."""
    scale = np.exp2(value)
    return scale - 1.0, (np.log(2.0) * scale) ** 2 * var


def _imputer_factory(
    dataset: PreparedDataset, signal: str, critic_path: Path | None, observed: ObservedValues, k: int
) -> Callable[[], Imputer]:
    if signal == "observed":
        return ZeroImputer
    if signal in ("observed+critic", "raw-critic"):
        return lambda: CriticImputer(
            critic_path or default_critic_path(dataset.name), with_variance=signal == "observed+critic"
        )
    from flexbench.train.signal.knn import ItemKNN, UserKNN

    cls = UserKNN if signal == "user-knn" else ItemKNN
    return lambda: KNNImputer(cls(dataset.interactions("train"), k=k), observed)
