"""``eval --all`` trains a missing BERT4Rec checkpoint before evaluating it; ``--no-train`` skips the row instead;
a ranker unavailable for another reason (no histories) is never trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from baselines.reference import RandomRanker
from flexbench import suite
from flexbench.ranker import REGISTRY, RankerContext, RankerUnavailable
from flexbench.results import ResultStore
from flexbench.trainers import TrainRequest


class _Trainer:
    per_need = False

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.requests: list[TrainRequest] = []

    def load(self) -> Any:
        def train(request: TrainRequest) -> Path:
            self.requests.append(request)
            return request.out_dir
        return train


@pytest.fixture()
def trainer(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> _Trainer:
    fake = _Trainer()
    monkeypatch.setattr("flexbench.trainers.get_trainer", lambda name: fake)
    monkeypatch.setattr(suite, "REGISTRY", {"bert4rec": REGISTRY["bert4rec"]})
    return fake


def _factory(trainer: _Trainer, reason: str):
    def make(entry: Any, dataset: Any, *, seed: int, options: Any) -> RandomRanker:
        if not trainer.requests:
            raise RankerUnavailable(reason)
        return RandomRanker(RankerContext(dataset, seed))
    return make


MISSING = "no bert4rec checkpoint in X; run `flexbench train bert4rec --dataset mock`"


def test_a_missing_checkpoint_is_trained_first(trainer: _Trainer, monkeypatch: pytest.MonkeyPatch,
                                               data_root: Path) -> None:
    monkeypatch.setattr(suite, "make_ranker", _factory(trainer, MISSING))
    said: list[str] = []
    report = suite.run_all(store=ResultStore(), datasets=["mock"], say=said.append)
    (request,) = trainer.requests
    assert request.method == "bert4rec" and request.dataset == "mock"
    assert request.out_dir == data_root / "checkpoints" / "bert4rec" / "mock"
    assert any(line.startswith("train bert4rec on mock:") and "--no-train" in line for line in said)
    assert report.ran and {r.key.ranker for r in report.ran} == {"bert4rec"} and not report.skipped


def test_no_train_skips_and_other_reasons_never_train(trainer: _Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "make_ranker", _factory(trainer, MISSING))
    report = suite.run_all(store=ResultStore(), datasets=["mock"], say=lambda s: None, train_missing=False)
    assert not trainer.requests and report.skipped == [("bert4rec on mock", MISSING)]
    monkeypatch.setattr(suite, "make_ranker", _factory(trainer, "bert4rec needs user histories"))
    report = suite.run_all(store=ResultStore(), datasets=["mock"], say=lambda s: None)
    assert not trainer.requests and report.skipped == [("bert4rec on mock", "bert4rec needs user histories")]
