"""``openai:MODEL``: endpoint models as their own rows, with model, host and sampling in provenance; the response
cache keyed by (model, prompt, settings); a malformed JSON body is retried; ``gpt-4o`` stays OpenAI's GPT-4o."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai import FakeOpenAIServer

from flexbench.errors import FlexBenchError
from flexbench.leaderboard.model import build_boards
from flexbench.llm.backends.base import SamplingParams
from flexbench.llm.backends.openai_backend import OpenAIBackend, OpenAIConfig, endpoint_host
from flexbench.ranker import UnknownRanker, get_entry
from flexbench.results import ResultStore
from flexbench.suite import run_evals

pytestmark = pytest.mark.network
SECRET = "sk-test-family-DO-NOT-LEAK-2b7c"


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def test_family_names() -> None:
    entry = get_entry("openai:gpt-4o-mini")
    assert entry.name == "openai:gpt-4o-mini" and entry.options["model"] == "gpt-4o-mini"
    assert entry.kind.value == "zero-shot" and "concurrency" in entry.accepted_options()
    org = get_entry("openai:HuggingFaceTB/SmolLM2-135M-Instruct")
    assert org.name == "openai:HuggingFaceTB--SmolLM2-135M-Instruct"
    assert org.options["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(UnknownRanker, match="names no model"):
        get_entry("openai:")
    assert endpoint_host("http://127.0.0.1:8000/v1") == "127.0.0.1:8000"
    assert endpoint_host("https://api.openai.com/v1") == "api.openai.com"


def _eval(ranker: str, server: FakeOpenAIServer, store: ResultStore, **kw: object) -> list:
    base = server.base_url.replace("http://", "http://user:pw-SECRET@")  # credentials in the URL: never stored
    options = {"base_url": base, "backoff_base_s": 0.01, "progress": False, "concurrency": 2,
               **kw.pop("options", {})}
    return run_evals(ranker, "mock", ["interest"], store=store, limit=3, options=options, **kw)


def test_two_endpoint_models_are_two_rows(data_root: Path) -> None:
    store = ResultStore()
    with FakeOpenAIServer(failures=["429", "badjson", "500"]) as server:
        (a,) = _eval("openai:fake-a", server, store)
        (b,) = _eval("openai:org/fake-b", server, store, permutations=2)
        sent = len(server.requests)
        (again,) = _eval("openai:fake-a", server, store, overwrite=True)  # recomputed from the cache
        assert len(server.requests) == sent and again.metrics == a.metrics
        assert sent == 3 + 3 * 2 + 3  # three faults retried, each (model, prompt) sent once
        port = server.base_url.split(":")[2].split("/")[0]
    assert {body["model"] for body in server.requests} == {"fake-a", "org/fake-b"}
    assert (a.key.ranker, b.key.ranker) == ("openai:fake-a", "openai:org--fake-b")
    for run, model in ((a, "fake-a"), (b, "org/fake-b")):
        prov = run.provenance
        assert prov["model"] == model and prov["endpoint_host"] == f"127.0.0.1:{port}"
        assert "SECRET" not in str(prov) and "pw" not in prov["endpoint"]
        assert prov["sampling"] == {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 512, "seed": 0, "n": 1}
    assert len(store.load_trials(b.key)) == 6 and b.provenance["permutations"] == 2
    (board,) = build_boards(store, dataset="mock")
    rows = {r.ranker: r for r in board.rows}
    assert set(rows) == {"openai:fake-a", "openai:org--fake-b"}
    assert {r.kind for r in rows.values()} == {"zero-shot"} and rows["openai:org--fake-b"].model == "org/fake-b"
    copier = rows["openai:org--fake-b"].order  # the fake answers in the order shown
    assert copier is not None and copier.first_slot_share == 1.0 and copier.kendall_tau == pytest.approx(1.0)
    for path in store.root.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text() and "pw-SECRET" not in path.read_text()


def test_gpt4o_stays_openais_gpt4o(data_root: Path) -> None:
    with pytest.raises(FlexBenchError, match="openai:fake-c"):
        run_evals("gpt-4o", "mock", ["interest"], store=ResultStore(), options={"model": "fake-c"})


def test_cache_is_keyed_by_model_prompt_and_settings(tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        def backend(model: str) -> OpenAIBackend:
            return OpenAIBackend(OpenAIConfig(model=model, base_url=server.base_url, cache_dir=tmp_path))

        greedy, sampled = SamplingParams(max_new_tokens=8), SamplingParams(max_new_tokens=8, temperature=0.7)
        backend("m1").generate(["[1] a"], greedy)
        backend("m1").generate(["[1] a"], greedy)
        assert len(server.requests) == 1
        backend("m2").generate(["[1] a"], greedy)
        backend("m1").generate(["[1] a"], sampled)
        backend("m1").generate(["[2] b"], greedy)
        assert len(server.requests) == 4


def test_malformed_json_is_retried_then_reported(tmp_path: Path) -> None:
    with FakeOpenAIServer(failures=["badjson"] * 3) as server:
        cfg = OpenAIConfig(model="m", base_url=server.base_url, cache_dir=tmp_path, max_retries=1,
                           backoff_base_s=0.01, concurrency=1)
        with pytest.raises(FlexBenchError, match="failed after 2 attempt"):
            OpenAIBackend(cfg).generate(["[1] a"], SamplingParams(max_new_tokens=4))
        out = OpenAIBackend(cfg).generate(["[1] a"], SamplingParams(max_new_tokens=4))
        assert out[0][0].text == "[1]\n" and len(server.requests) == 4
