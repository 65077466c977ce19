"""One real training step with ``engine=vllm`` (``flexbench train`` wiring): the engine follows the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flexbench.llm.backends.base import SamplingParams

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1800)]  # minutes on a loaded 2-core machine


def test_one_step_with_engine_vllm_syncs_the_engine(engine: Any, smollm2: tuple[Any, Any],
                                                    kuairec_prompts: list[str], restore_weights: None,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    """FlexRec, 1 KuaiRec prompt x G=2, free-form rollouts from vLLM, lr 1e-3 (AdamW moves every weight by
    about 1e-3: enough to change SmolLM2's greedy continuation). Afterwards the engine's greedy
    continuation equals the saved policy's, differs from the base model's, and ``logprob_gap`` is logged and
    below ``LOGPROB_GAP_BOUND`` (1e-3; measured here: 1.5e-5 over the step's 24 sampled tokens).

    The session's engine stands in for the one ``make_backend`` would start (same class and arguments
    as :func:`flexbench.train.rollout.engines.vllm_engine`), so the test needs a single engine's memory.
    """
    from test_vllm_backend import LOGPROB_GAP_BOUND

    from flexbench.llm.backends.transformers_backend import TransformersBackend
    from flexbench.llm.models import load_model_and_tokenizer
    from flexbench.train.curves import METRICS_FILE, read_metrics
    from flexbench.train.rollout import engines
    from flexbench.train.run import train_policy
    from flexbench.trainers import TrainRequest

    started: list[Any] = []
    monkeypatch.setattr(engines, "vllm_engine", lambda cfg, model, tok: started.append(cfg) or engine)
    out = tmp_path / "flexrec"
    options = {"method": "flexrec", "engine": "vllm", "constrained": False, "steps": 1, "prompts_per_step": 1,
               "group_size": 2, "max_new_tokens": 12, "lr": 1e-3, "kl_coef": 0.0, "eval_instances": 1,
               "eval_max_new_tokens": 4, "train_instances": 2, "cpu_threads": 1}
    request = TrainRequest(method="flexrec", dataset="kuairec", needs=("trend",), out_dir=out, model="smollm2",
                           seed=0, resume=False, options=options)
    assert train_policy(request) == out
    assert started and started[0].vllm_gpu_memory == 0.3 and not started[0].vllm_sleep
    assert "rollout engine: vLLM 0.32.0 V1 engine, in-process" in capfd.readouterr().err
    (line,) = read_metrics(out / METRICS_FILE, "train")
    print({k: line[k] for k in ("logprob_gap", "sync_seconds", "sync_mb", "loss", "tokens")})
    assert 0 <= line["logprob_gap"] < LOGPROB_GAP_BOUND
    assert line["sync_seconds"] > 0 and line["sync_mb"] > 1000  # 135 M float32 parameters (+ tied head), twice

    base, tokenizer = smollm2
    trained, _ = load_model_and_tokenizer(str(out / "policy"), device="cpu", dtype="float32")
    greedy = SamplingParams(max_new_tokens=32)
    prompts = kuairec_prompts[:1]
    engine_ids = engine.generate(prompts, greedy)[0][0].token_ids
    policy_ids = TransformersBackend(trained, tokenizer).generate(prompts, greedy)[0][0].token_ids
    base_ids = TransformersBackend(base, tokenizer).generate(prompts, greedy)[0][0].token_ids
    assert engine_ids == policy_ids
    assert engine_ids != base_ids
