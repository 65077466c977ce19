"""BERT4Rec through RecBole: a fast smoke test of training, saving, loading and scoring on the mock.

The comparison with random and popularity on the sample datasets trains for real and is marked slow.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from baseline_fixtures import history_instance

from baselines.bert4rec import (
    BERT4RecConfig,
    BERT4RecModel,
    BERT4RecRanker,
    history_threshold,
    train_command,
    write_atomic_files,
)
from flexbench.errors import FlexBenchError
from flexbench.ranker import RankerContext, RankerUnavailable, build_ranker
from flexbench.trainers import TrainRequest
from flexbench.vocabulary import INTEREST

pytest.importorskip("recbole")

TINY = {"epochs": 2, "hidden_size": 16, "n_layers": 1, "n_heads": 1, "inner_size": 32, "max_seq_length": 12,
        "train_batch_size": 128}


def _train(root: Path, out: Path, *, resume: bool = False, options: dict | None = None) -> Path:
    request = TrainRequest("bert4rec", "mock", ("interest",), out, seed=3, resume=resume,
                           options=options or TINY)
    return train_command(request)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root, checkpoint dir) of a tiny BERT4Rec trained on the mock, from an empty working directory."""
    root = tmp_path_factory.mktemp("data")
    workdir = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEXBENCH_DATA", str(root))
        mp.chdir(workdir)
        out = _train(root, root / "checkpoints" / "bert4rec" / "mock")
    assert list(workdir.iterdir()) == [], "RecBole wrote into the working directory"
    return root, out


@pytest.fixture()
def mock_ctx(trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    root, _ = trained
    monkeypatch.setenv("FLEXBENCH_DATA", str(root))
    from flexbench.catalog import open_dataset

    return open_dataset("mock")


def test_train_saves_checkpoint_and_prints_times(trained, capsys) -> None:
    _, out = trained
    assert {p.name for p in out.iterdir()} >= {"model.pt", "bert4rec.json", "recbole"}
    assert not (Path(trained[0]) / "cache" / "recbole" / "run" / "log_tensorboard").exists()


def test_session_restores_process_state(tmp_path, monkeypatch) -> None:
    from baselines.recbole_compat import check_dataset_name, recbole_session

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--epochs=999"])
    argv, threads, cwd = list(sys.argv), torch.get_num_threads(), Path.cwd()
    with recbole_session(tmp_path / "run", num_threads=1) as rb:
        config = rb.Config(model="BERT4Rec", dataset="flexbench_x", config_dict={
            "data_path": str(tmp_path), "loss_type": "CE", "train_neg_sample_args": None, "epochs": 2})
        assert config["epochs"] == 2  # the host's --epochs=999 is hidden from RecBole
        assert torch.get_num_threads() == 1 and not torch.is_anomaly_enabled()
        assert np.float_ is np.float64
    assert not hasattr(np, "float_") and not hasattr(np, "float") and np.bool is np.bool_
    assert sys.argv == argv and torch.get_num_threads() == threads and Path.cwd() == cwd
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and not torch.is_anomaly_enabled()
    assert list(tmp_path.glob("run/*")) == []
    with pytest.raises(ValueError, match="built-in"):
        check_dataset_name("ml-1m")


def test_ranker_scores_candidates_deterministically(mock_ctx, tmp_path, monkeypatch) -> None:
    instances = mock_ctx.instances("test")
    monkeypatch.chdir(tmp_path)
    ranker = build_ranker("bert4rec", RankerContext(mock_ctx))
    assert list(tmp_path.iterdir()) == []
    first = ranker.rank(instances, INTEREST)
    assert [r.instance_id for r in first] == [x.instance_id for x in instances]
    assert all(sorted(r.item_ids) == sorted(x.candidate_ids) for r, x in zip(first, instances, strict=True))
    assert [r.item_ids for r in first] == [r.item_ids for r in BERT4RecRanker(RankerContext(mock_ctx)).rank(
        instances[::-1], INTEREST)][::-1]


def test_direct_scores_equal_recbole_prediction(trained) -> None:
    """s(c) on history h[1:] equals RecBole's full_sort_predict on h (which drops h's first item)."""
    model = BERT4RecModel.load(trained[1])
    known = list(model.index)[:6]
    history, candidates = known[:5], known
    ours = model.scores([history[1:]], [candidates])[0]
    seq = torch.zeros((1, model.max_len), dtype=torch.long)
    seq[0, :5] = torch.tensor([model.index[i] for i in history])
    with torch.no_grad():
        full = model.model.full_sort_predict({"item_id_list": seq, "item_length": torch.tensor([5])})[0]
    assert ours == pytest.approx(full[[model.index[c] for c in candidates]].numpy(), abs=1e-5)


def test_unseen_candidates_rank_last_by_id(trained) -> None:
    model = BERT4RecModel.load(trained[1])
    known = list(model.index)[:3]
    scores = model.scores([known], [["zz-new", known[0], "aa-new"]])[0]
    assert np.isneginf(scores[[0, 2]]).all() and np.isfinite(scores[1])


def test_same_seed_same_model_and_resume_skips(trained, tmp_path, monkeypatch, capsys) -> None:
    root, out = trained
    monkeypatch.setenv("FLEXBENCH_DATA", str(root))
    again = _train(root, tmp_path / "again")
    first = torch.load(out / "model.pt", weights_only=True)
    second = torch.load(again / "model.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)
    capsys.readouterr()
    _train(root, again, resume=True)
    printed = capsys.readouterr().out
    assert "up to date" in printed and "scoring time" in printed


def test_interrupted_training_resumes_from_recbole_checkpoint(trained, tmp_path, monkeypatch, capsys) -> None:
    """RecBole's own checkpoint (loaded through the session's weights_only=False torch.load) resumes a run."""
    root, _ = trained
    monkeypatch.setenv("FLEXBENCH_DATA", str(root))
    run = _train(root, tmp_path / "run")
    state_file = run / "recbole" / "BERT4Rec-best.pth"
    with pytest.raises(Exception, match="weights_only"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on pickle protocol 4
        torch.load(state_file)  # what RecBole's trainer would hit without the compat session
    state = torch.load(state_file, weights_only=False)
    state["epoch"] = 0  # as if interrupted after the first epoch
    torch.save(state, state_file)
    (run / "bert4rec.json").unlink()
    capsys.readouterr()
    _train(root, run, resume=True)
    printed = capsys.readouterr().out
    assert "resuming bert4rec from epoch 1" in printed and "training time" in printed
    assert (run / "bert4rec.json").exists()


def test_missing_checkpoint_and_bad_options(mock_ctx, tmp_path) -> None:
    with pytest.raises(RankerUnavailable, match="flexbench train bert4rec --dataset mock"):
        BERT4RecRanker(RankerContext(mock_ctx, options={"checkpoint": str(tmp_path / "none")}))
    with pytest.raises(FlexBenchError, match="unknown bert4rec option"):
        BERT4RecConfig.from_options({"epoch": 3})
    with pytest.raises(FlexBenchError, match="multiple of n_heads"):
        BERT4RecConfig(hidden_size=10, n_heads=3)


def test_positive_history_mode_feeds_only_engaged_items(trained) -> None:
    """With a threshold, rank() scores each instance from its items with engagement >= threshold only."""
    model = BERT4RecModel.load(trained[1])
    known = list(model.index)[:8]
    x = history_instance("x", [(known[0], 2.0), (known[1], 0.2), (known[2], 1.0), (known[3], 0.5)], known[4:])
    model.min_engagement = 1.0
    [ranking] = model.rank([x])
    kept = model.scores([[known[0], known[2]]], [known[4:]])[0]
    assert ranking.item_ids == tuple(known[4:][i] for i in np.lexsort((known[4:], -kept)))
    assert not np.allclose(kept, model.scores([known[:4]], [known[4:]])[0])
    model.min_engagement = 9.0  # nothing kept: the mask token alone, the model's learned prior
    assert model.rank([x])[0].item_ids == tuple(known[4:][i] for i in np.lexsort(
        (known[4:], -model.scores([[]], [known[4:]])[0])))


def test_history_mode_and_training_log_follow_the_dataset(tiny_dataset, tmp_path) -> None:
    emb = {i: (1.0, 0.0) for i in "ABCD"}
    observed = [("u1", "A", 1.0, 1, "train"), ("u1", "B", 1.0, 2, "train"), ("u9", "C", 1.0, 1, "test")]
    organic = [("b2", "D", 0.3, 5, "train"), ("b1", "C", 0.5, 9, "train"), ("b1", "A", 2.0, 3, "train")]
    kuai = tiny_dataset(emb, observed, [history_instance("x", [("A", 1.0)], ["B", "C"])], name="kuai",
                        organic=organic, config={"positive_engagement": 1.0})
    plain = tiny_dataset(emb, observed, [history_instance("x", [("A", 1.0)], ["B", "C"])], name="plain")
    assert [history_threshold(kuai, m) for m in ("auto", "positive", "all")] == [1.0, 1.0, None]
    assert history_threshold(plain, "auto") is None
    with pytest.raises(FlexBenchError, match="defines no positive engagement"):
        history_threshold(plain, "positive")
    with pytest.raises(FlexBenchError, match="history must be one of"):
        BERT4RecConfig(history="liked")
    name = write_atomic_files(kuai, tmp_path, "organic")
    rows = (tmp_path / name / f"{name}.inter").read_text().splitlines()
    assert "_organic_" in name and rows[1:] == ["b1\tA\t0.0", "b1\tC\t1.0", "b2\tD\t0.0"]
    name = write_atomic_files(kuai, tmp_path, "observed")
    assert (tmp_path / name / f"{name}.inter").read_text().splitlines()[1:] == ["u1\tA\t0.0", "u1\tB\t1.0"]
