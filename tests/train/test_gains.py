"""Training-time gain providers on the mock dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset
from flexbench.train.methods import get_method
from flexbench.train.signal.critic import CriticConfig, save_critic, train_critic
from flexbench.train.signal.critic_data import dataset_examples, split_indices
from flexbench.train.signal.gains import make_gain_provider, value_to_gain
from flexbench.types import Candidate, Instance


@pytest.fixture(scope="module")
def critic_dir(mock_dataset: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    item_ids, emb, examples = dataset_examples(mock_dataset)
    train, valid, _ = (examples.subset(i) for i in split_indices(len(examples)))
    critic, _ = train_critic(train, valid, item_ids, emb, CriticConfig(hidden=16, epochs=2))
    out = tmp_path_factory.mktemp("critic")
    save_critic(critic, out)
    return out


def _with_observed_candidate(dataset: PreparedDataset) -> tuple[Instance, str, float]:
    """A training instance whose last candidate is swapped for an item the user was observed with."""
    inst = dataset.instances("train", limit=1)[0]
    seen = dataset.interactions("train")
    row = seen[seen["user_id"] == inst.user_id].iloc[0]
    text = dataset.items.loc[row.item_id, "text"]
    cands = (*inst.candidates[:-1], Candidate(row.item_id, text))
    return dataclasses.replace(inst, candidates=cands), row.item_id, float(row.value)


@pytest.mark.parametrize("signal", ["observed+critic", "raw-critic", "user-knn", "item-knn"])
def test_observed_values_with_zero_variance(
    mock_dataset: PreparedDataset, critic_dir: Path, signal: str
) -> None:
    provider = make_gain_provider(mock_dataset, "interest", signal, critic_dir)
    inst, _, value = _with_observed_candidate(mock_dataset)
    gains, var = provider.candidate_gains(inst, "interest")
    assert gains.shape == var.shape == (inst.k,)
    assert gains[-1] == pytest.approx(value) and var[-1] == 0.0
    assert np.all(np.isfinite(gains)) and np.all(gains >= 0)
    if signal == "observed+critic":
        assert np.all(var[:-1] > 0)
    else:
        assert np.all(var == 0)


def test_raw_critic_has_critic_means(mock_dataset: PreparedDataset, critic_dir: Path) -> None:
    inst = mock_dataset.instances("train", limit=1)[0]
    full = make_gain_provider(mock_dataset, "interest", "observed+critic", critic_dir).candidate_gains(
        inst, "interest"
    )
    raw = make_gain_provider(mock_dataset, "interest", "raw-critic", critic_dir).candidate_gains(
        inst, "interest"
    )
    np.testing.assert_allclose(full[0], raw[0])
    assert np.all(raw[1] == 0)


def test_labels_signal_and_content_needs_use_stored_labels(
    mock_dataset: PreparedDataset, critic_dir: Path
) -> None:
    inst = mock_dataset.instances("train", limit=1)[0]
    stored = np.array(mock_dataset.labels("novelty")[inst.instance_id].gains)
    for signal in ("labels", "observed+critic", "item-knn"):
        gains, var = make_gain_provider(mock_dataset, "novelty", signal, critic_dir).candidate_gains(
            inst, "novelty"
        )
        np.testing.assert_array_equal(gains, stored)
        assert np.all(var == 0)
    interest = np.array(mock_dataset.labels("interest")[inst.instance_id].gains)
    got, _ = make_gain_provider(mock_dataset, "interest", "labels").candidate_gains(inst, "interest")
    np.testing.assert_array_equal(got, interest)


def test_user_errors(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    with pytest.raises(FlexBenchError, match="dense dataset variant"):
        make_gain_provider(mock_dataset, "interest", "dense", None)
    with pytest.raises(FlexBenchError, match="unknown reward signal"):
        make_gain_provider(mock_dataset, "interest", "critic", None)
    with pytest.raises(FlexBenchError, match="no critic checkpoint"):
        make_gain_provider(mock_dataset, "interest", "observed+critic", tmp_path)


def test_ml1m_gain_map_delta_method() -> None:
    gain, var = value_to_gain("ml-1m")(np.array([4.0, 0.0]), np.array([0.0, 0.5]))
    np.testing.assert_allclose(gain, [15.0, 0.0])
    np.testing.assert_allclose(var, [0.0, np.log(2) ** 2 * 0.5])


def test_observed_signal_gives_unobserved_candidates_gain_zero(mock_dataset: PreparedDataset, tmp_path: Path) -> None:
    """``observed``: the observed value where observed, 0 (variance 0) elsewhere; no critic is needed."""
    from flexbench.train.methods import get_method

    provider = make_gain_provider(mock_dataset, "interest", "observed", tmp_path / "no-critic-here")
    inst, _, value = _with_observed_candidate(mock_dataset)
    gains, var = provider.candidate_gains(inst, "interest")
    seen = provider.observed.lookup(inst.user_id, inst.candidate_ids)
    np.testing.assert_array_equal(gains, np.where(np.isnan(seen), 0.0, seen))
    assert gains[-1] == pytest.approx(value) and np.all(var == 0)
    method = get_method("flexrec-observed")
    assert method.gain_signal == "observed" and not method.needs_critic and not method.uncertainty


@pytest.mark.parametrize(("method", "dataset", "unrated", "expected"), [
    ("flexrec", "ml-1m", "auto", "observed"),          # ML-1M labels give unrated candidates 0: train on that rule
    ("flexrec", "kuairec", "auto", "observed+critic"),  # KuaiRec labels are dense: impute the unobserved cells
    ("flexrec", "ml-1m", "impute", "observed+critic"),
    ("flexrec", "kuairec", "zero", "observed"),
    ("flexrec-userknn", "ml-1m", "auto", "observed"),
    ("rec-r1", "ml-1m", "auto", "observed"),
    ("flexrec-dense", "kuairec", "zero", "dense"),      # dense and label signals are never changed
])
def test_unrated_gains_choose_the_training_signal(method: str, dataset: str, unrated: str, expected: str) -> None:
    from flexbench.train.config import TrainConfig, UnratedGains
    from flexbench.train.run import gain_signal_for

    cfg = TrainConfig.from_options({"unrated_gains": unrated})
    assert cfg.unrated_gains is UnratedGains(unrated)
    assert gain_signal_for(get_method(method), dataset, cfg.unrated_gains) == expected


def test_unrated_gains_rejects_unknown_values() -> None:
    from flexbench.errors import FlexBenchError
    from flexbench.train.config import TrainConfig

    with pytest.raises((FlexBenchError, ValueError), match="unrated_gains|impute"):
        TrainConfig.from_options({"unrated_gains": "critic"})


def test_on_a_rated_only_dataset_training_needs_no_critic_and_says_so(
        mock_dataset: PreparedDataset, data_root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``unrated_gains=auto`` on a dataset of UNRATED_IS_ZERO: flexrec's providers give unobserved candidates 0,
    no critic is looked up or trained, and one line names the choice and the option that undoes it."""
    from flexbench import vocabulary
    from flexbench.train.config import TrainConfig
    from flexbench.train.run import _gain_providers, gain_signal_for
    from flexbench.trainers import TrainRequest

    monkeypatch.setattr(vocabulary, "UNRATED_IS_ZERO", frozenset({mock_dataset.dataset}))
    cfg = TrainConfig.from_options({"auto_critic": False})  # a critic lookup would raise: there is none
    request = TrainRequest("flexrec", mock_dataset.name, ("interest",), data_root / "out")
    method = get_method("flexrec")
    signal = gain_signal_for(method, mock_dataset.dataset, cfg.unrated_gains)
    provider = _gain_providers(mock_dataset, ["interest"], method, signal, cfg, request)["interest"]
    inst, _, value = _with_observed_candidate(mock_dataset)
    gains, var = provider.candidate_gains(inst, "interest")
    seen = provider.observed.lookup(inst.user_id, inst.candidate_ids)
    np.testing.assert_array_equal(gains, np.where(np.isnan(seen), 0.0, seen))
    assert gains[-1] == pytest.approx(value) and np.all(var == 0)
    assert "unrated_gains=impute" in capsys.readouterr().err
