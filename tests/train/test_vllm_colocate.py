"""The colocated vLLM engine's GPU-side behaviour, against a stand-in vLLM (issue 25, findings 1 and 4).

No vLLM here: a stand-in module with vLLM's offline names records what the
backend asks of it, so the order of cache emptying, wake-ups and weight loads,
the allocator refusal, the weight route, the bf16 cast before the push, the
engine's context length and the per-rank seeds are checked on CPU.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch
from policy_fixtures import tiny_policy, toy_tokenizer

from flexbench.errors import FlexBenchError
from flexbench.llm.backends import SamplingParams
from flexbench.llm.backends import vllm_backend as vb
from flexbench.train.config import TrainConfig
from flexbench.train.rollout import engines
from flexbench.train.rollout.weights import policy_weights

__all__ = ["toy_tokenizer"]


class _Model:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def load_weights(self, weights: Any) -> None:
        self.log.append(("load_weights", [(n, t.dtype) for n, t in weights]))

    def parameters(self) -> Any:
        return iter([torch.zeros(1, dtype=torch.bfloat16)])


class _Worker:
    def __init__(self, log: list[Any], reload: bool) -> None:
        self.model_runner = types.SimpleNamespace(model=_Model(log))
        if reload:
            self.reload_weights = lambda weights_iterator, is_checkpoint_format: log.append(
                ("reload_weights", [n for n, _ in weights_iterator]))


class _LLM:
    def __init__(self, log: list[Any], reload: bool, **kwargs: Any) -> None:
        self.log, self.kwargs = log, kwargs
        self.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(
            driver_worker=_Worker(log, reload)), model_config=types.SimpleNamespace(dtype=torch.bfloat16))

    def sleep(self, level: int) -> None:
        self.log.append(("sleep", level))

    def wake_up(self, tags: Any = None) -> None:
        self.log.append(("wake_up", tags))

    def reset_prefix_cache(self) -> bool:
        self.log.append("reset_prefix_cache")
        return True


def _fake_vllm(monkeypatch: pytest.MonkeyPatch, platform: str, reload: bool = False) -> list[Any]:
    log: list[Any] = []
    module = types.ModuleType("vllm")
    module.__version__ = "0.0-standin"  # type: ignore[attr-defined]
    module.LLM = lambda **kw: _LLM(log, reload, **kw)  # type: ignore[attr-defined]
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(device_type=platform)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    monkeypatch.setattr(vb, "free_cached_memory", lambda: log.append("free_cached_memory"))
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.delenv("PYTORCH_ALLOC_CONF", raising=False)
    return log


def test_cache_is_emptied_before_each_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    log = _fake_vllm(monkeypatch, "cuda")
    backend = vb.VLLMBackend("some/model", sleep_mode=True, max_model_len=3328)
    assert backend.llm.kwargs["max_model_len"] == 3328 and backend.llm.kwargs["enable_sleep_mode"]
    backend.sleep(level=2)
    backend.update_weights([("w", torch.ones(2, dtype=torch.bfloat16))])
    assert log == [("sleep", 2), "free_cached_memory", ("wake_up", ["weights"]),
                   ("load_weights", [("w", torch.bfloat16)]),  # TRL's route on GPUs
                   "free_cached_memory", ("wake_up", ["kv_cache"]), "reset_prefix_cache"]


def test_sleep_mode_refuses_expandable_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_vllm(monkeypatch, "cuda")
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:512, expandable_segments:True")
    with pytest.raises(FlexBenchError, match="expandable segments"):
        vb.VLLMBackend("some/model", sleep_mode=True)
    vb.VLLMBackend("some/model", sleep_mode=False)  # without sleep mode it is fine


@pytest.mark.parametrize(("platform", "reload", "route"), [("cuda", True, "load_weights"),
                                                           ("cpu", True, "reload_weights"),
                                                           ("cpu", False, "load_weights")])
def test_weight_route_prefers_load_weights_on_gpus(monkeypatch: pytest.MonkeyPatch, platform: str, reload: bool,
                                                   route: str) -> None:
    _fake_vllm(monkeypatch, platform, reload)
    backend = vb.VLLMBackend("some/model")
    assert backend.weight_route() == route
    assert backend.update_weights([("w", torch.ones(1))]).route == f"in-process {route}"


def test_push_is_cast_to_the_engines_dtype(toy_tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    log = _fake_vllm(monkeypatch, "cuda")
    backend = vb.VLLMBackend("some/model")
    assert backend.weight_dtype == torch.bfloat16
    model = tiny_policy(toy_tokenizer)
    info = engines.VLLMSync(backend)(model)
    pushed = dict(log[-2][1])
    assert set(pushed.values()) == {torch.bfloat16}
    assert info["sync_mb"] == pytest.approx(sum(2 * t.numel() for _, t in policy_weights(model)) / 2**20)


def test_long_prompts_are_refused_before_the_engine(monkeypatch: pytest.MonkeyPatch, toy_tokenizer) -> None:  # type: ignore[no-untyped-def]
    _fake_vllm(monkeypatch, "cuda")
    backend = vb.VLLMBackend("some/model", max_model_len=8, tokenizer=toy_tokenizer)
    with pytest.raises(FlexBenchError, match="plan_prompt_tokens"):
        backend.generate(["a prompt that is longer than eight tokens, surely"], SamplingParams(max_new_tokens=4))


def test_engine_context_is_the_prompt_budget_plus_completion() -> None:
    cfg = TrainConfig(model="tiny", max_new_tokens=1024, plan_prompt_tokens=1500)
    assert engines.engine_max_len(cfg) == 2304 + 1024
    assert engines.engine_max_len(cfg, model_max=2048) == 2048


def test_every_rank_samples_with_its_own_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    class Backend:
        eos_token_ids = (2,)

        def generate(self, prompts: Any, params: Any, candidate_ids: Any = None) -> Any:
            seen.append(params.seed)
            return []

    monkeypatch.setenv("WORLD_SIZE", "1")
    plain = Backend()
    assert engines.rank_seeded(plain) is plain
    monkeypatch.setenv("WORLD_SIZE", "4")
    for rank in range(4):
        monkeypatch.setenv("RANK", str(rank))
        wrapped = engines.rank_seeded(Backend())
        assert wrapped.eos_token_ids == (2,)  # attributes pass through
        wrapped.generate(["p"], SamplingParams(max_new_tokens=2, temperature=1.0, n=2, seed=7))
    assert seen[0] == 7 and len(set(seen)) == 4


def test_sync_says_whether_sampling_needs_the_policys_weights() -> None:
    assert engines.NoSync.needs_policy_weights and not engines.VLLMSync.needs_policy_weights
