"""benchmarks/small_scale.py: the paired-test table and the resumable driver, with training mocked.

Training is replaced by a runner that writes what ``flexbench train`` writes
(``run.json`` with the preset's resolved config, ``metrics.jsonl``); evaluation
runs the real harness and result store on the mock dataset, with cheap
rankers standing in for the LLM rows under the rows' labels.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_scale():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("small_scale", ROOT / "benchmarks" / "small_scale.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["small_scale"] = module
    spec.loader.exec_module(module)
    return module


def _scores(values: np.ndarray) -> dict[str, dict[str, float]]:
    return {f"i{j}": {m: float(v) for m in ("ndcg@5", "ndcg@10", "ndcg@30", "recall@5", "mrr@5")}
            for j, v in enumerate(values)}


def test_marks_follow_both_paired_tests(small_scale) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 120)
    scores = {"zero-shot": _scores(base), "same": _scores(base), "better": _scores(base + rng.normal(0.05, 0.05, 120)),
              "worse": _scores(base - 0.1), "noise": _scores(base + rng.normal(0, 0.05, 120))}
    scores["partial"] = {k: v for k, v in scores["better"].items() if int(k[1:]) < 100}
    rows = {r.label: r for r in small_scale.summarise(scores, "zero-shot", n_resamples=500)}
    assert rows["same"].pvalues["ndcg@5"] == (1.0, 1.0) and rows["same"].marks["ndcg@5"] == ""
    assert rows["better"].marks["ndcg@5"] == "▲" and max(rows["better"].pvalues["ndcg@5"]) < 0.05
    assert rows["worse"].marks["ndcg@5"] == "▼" and rows["worse"].delta["ndcg@5"] == pytest.approx(-0.1)
    assert rows["noise"].marks["ndcg@5"] == ""  # mean shift well inside the noise: no mark
    assert rows["partial"].n == 100  # compared on the shared instances only
    assert rows["zero-shot"].marks == {m: "" for m in rows["zero-shot"].marks}
    text = small_scale.render_table(list(rows.values()), "zero-shot", "CAPTION", {"better": "d/better.png"})
    lines = text.splitlines()
    assert lines[0] == "CAPTION" and lines[2].startswith("| Method | N@5 | N@10 | N@30 | R@5 | MRR@5 |")
    better = next(ln for ln in lines if ln.startswith("| better "))
    assert better.count("▲") == 5 and "[curve](d/better.png)" in better
    assert next(ln for ln in lines if ln.startswith("| zero-shot ")).split(" | ")[6:8] == ["—", "—"]
    with pytest.raises(ValueError, match="shares no instance"):
        small_scale.summarise({"zero-shot": _scores(base), "x": {"other": scores["same"]["i0"]}}, "zero-shot")


class FakeRunner:
    """``flexbench train``: writes run.json (the preset's resolved config) and a metrics log, optionally
    failing once; ``flexbench eval``: the real harness with a cheap stand-in ranker under the row's label."""

    STAND_IN: ClassVar[dict[str, str]] = {"zero-shot-constrained": "random", "flexrec": "oracle-interest"}

    def __init__(self, data: Path, fail_once: str | None = None) -> None:
        self.data, self.fail_once, self.calls = data, fail_once, []

    def __call__(self, cmd: Sequence[str]) -> int:
        args = list(cmd[3:])  # drop "python -m flexbench"
        self.calls.append(args[:2])
        if args[0] == "train":
            return self._train(args[1], args)
        return self._eval(args[1], args)

    def _train(self, method: str, args: list[str]) -> int:
        from flexbench.train.methods import get_method
        from flexbench.train.run import build_config
        from flexbench.trainers import TrainRequest

        if method == self.fail_once:
            self.fail_once = None
            return 130
        preset = json.loads(Path(args[args.index("--config") + 1]).read_text())
        out = self.data / "checkpoints" / method / "mock" / "interest"
        cfg = build_config(get_method(method), TrainRequest(method, "mock", ("interest",), out, options=preset))
        out.mkdir(parents=True, exist_ok=True)  # the driver may have seeded metrics.jsonl
        (out / "run.json").write_text(json.dumps({"method": method, "config": cfg.to_dict()}))
        lines = [{"step": 0, "split": "valid", "need": "interest", "ndcg@5": 0.3, "ndcg@10": 0.4, "n": 8},
                 {"step": 1, "split": "train", "reward_mean": 0.5, "loss": 0.1, "kl": 0.0, "seconds": 2.0},
                 {"step": 1, "split": "valid", "need": "interest", "ndcg@5": 0.4, "ndcg@10": 0.5, "n": 8}]
        (out / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        return 0

    def _eval(self, row: str, args: list[str]) -> int:
        from flexbench.results import ResultStore
        from flexbench.suite import run_evals

        assert "--limit" in args
        if row not in ("random", "popularity"):  # the LLM rows share the decoding and the policies' prompt
            assert "max_new_tokens=" + str(json.loads((ROOT / "flexbench/train/presets/cpu-small.json").read_text())
                                           ["max_new_tokens"]) in args
        ranker = self.STAND_IN.get(row, "random" if row not in ("popularity",) else "popularity")
        run_evals(ranker, "mock", ["interest"], store=ResultStore(), limit=int(args[args.index("--limit") + 1]),
                  options={"label": row})
        return 0


def test_driver_trains_once_resumes_and_writes_the_board(small_scale, data_root: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "board" / "small-scale.md"
    argv = ["--dataset", "mock", "--limit", "12", "--out", str(out), "--resamples", "200"]
    runner = FakeRunner(data_root, fail_once="rank-grpo")
    with pytest.raises(SystemExit, match="training rank-grpo stopped"):
        small_scale.main(argv, runner)
    state = json.loads(small_scale.state_path(data_root, "mock", "interest").read_text())
    assert state["train"]["rec-r1"]["done"] and not state["train"]["rank-grpo"]["done"]
    assert "flexrec" not in state["train"]  # stopped before it
    small_scale.main(argv, runner)  # resumes: trains rank-grpo and flexrec only, then evaluates
    trained = [c[1] for c in runner.calls if c[0] == "train"]
    assert trained == ["tallrec", "rec-r1", "rank-grpo", "rank-grpo", "flexrec"]
    state = json.loads(small_scale.state_path(data_root, "mock", "interest").read_text())
    assert state["train"]["rank-grpo"]["invocations"] == 2
    text = out.read_text()
    assert "SmolLM2" in text or "smollm2" in text
    assert "Test: the first 12 of the 12 test instances" in text and "(fewer than 100 exist)" in text and "zero-shot-constrained" in text
    flexrec = next(ln for ln in text.splitlines() if ln.startswith("| flexrec "))
    assert flexrec.count("▲") == 5  # the oracle stand-in beats the random stand-in on every metric
    assert (out.parent / "small-scale" / "flexrec-mock-interest.png").read_bytes()[:4] == b"\x89PNG"
    small_scale.main([*argv, "--stages", "train"], runner)  # everything done: nothing is retrained
    assert [c[1] for c in runner.calls if c[0] == "train"] == trained


def test_follow_evaluates_each_method_once_its_training_is_done(small_scale, data_root: Path,
                                                                 tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``--stages eval --follow`` beside a running train lane: references and zero-shot start once one
    ``run.json`` exists, each method only after the state file marks it trained."""
    args = small_scale._args(["--dataset", "mock", "--limit", "6", "--follow", "--methods", "tallrec,flexrec"])
    path = small_scale.state_path(data_root, "mock", "interest")
    trainer = FakeRunner(data_root)
    evals: list[str] = []
    script = iter(["nothing", "tallrec-started", "tallrec-done", "flexrec-done"])

    def sleep(_: float) -> None:  # each poll advances the train lane by one event
        event = next(script)
        state = small_scale.load_state(path)
        if event == "tallrec-started":
            trainer(["python", "-m", "flexbench", "train", "tallrec", "--config", args.preset])
        elif event.endswith("-done"):
            method = event.removesuffix("-done")
            if method == "flexrec":
                trainer(["python", "-m", "flexbench", "train", "flexrec", "--config", args.preset])
            state["train"][method] = {"done": True, "wall_s": 1.0, "invocations": 1}
        small_scale.save_state(path, state)

    def runner(cmd: Sequence[str]) -> int:
        evals.append(cmd[4])
        return 0

    small_scale.run_eval(args, data_root, path, runner, sleep=sleep)
    assert evals == ["random", "popularity", "zero-shot-constrained", "tallrec", "flexrec"]
    with pytest.raises(StopIteration):  # every scripted event was needed: no row ran before its training
        next(script)


def test_step0_validation_is_shared_only_between_identical_settings(small_scale, data_root: Path) -> None:  # type: ignore[no-untyped-def]
    args = small_scale._args(["--dataset", "mock"])
    FakeRunner(data_root)(["python", "-m", "flexbench", "train", "tallrec", "--config", args.preset])
    assert small_scale.share_base_validation("rec-r1", ["tallrec"], args, data_root) == "tallrec"
    seeded = (small_scale.checkpoint_of(data_root, "rec-r1", "mock", "interest") / "metrics.jsonl").read_text()
    lines = [json.loads(ln) for ln in seeded.splitlines()]
    assert [(x["step"], x["split"], x["shared_from"], x["ndcg@5"]) for x in lines] == [(0, "valid", "tallrec", 0.3)]
    assert small_scale.share_base_validation("rec-r1", ["tallrec"], args, data_root) is None  # already seeded
    other = small_scale._args(["--dataset", "mock", "--train-set", "eval_instances=3"])
    assert small_scale.share_base_validation("flexrec", ["tallrec"], other, data_root) is None  # other instances
    assert not (small_scale.checkpoint_of(data_root, "flexrec", "mock", "interest") / "metrics.jsonl").exists()
