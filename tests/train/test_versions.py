"""Start-up checks of library versions and APIs (issue 25, finding 3)."""

from __future__ import annotations

import pytest

from flexbench.errors import FlexBenchError
from flexbench.train import versions
from flexbench.train.versions import (
    at_least,
    check_runtime,
    logits_to_keep_probe,
    parse_version,
    version_line,
)


def test_versions_parse_and_compare() -> None:
    assert parse_version("2.13.0+cpu") == (2, 13, 0)
    assert parse_version("2.6.0rc1") == (2, 6, 0)
    assert parse_version("0.10.1.dev3") == (0, 10, 1)
    assert at_least("4.56.0", "4.56") and not at_least("4.46.3", "4.56") and not at_least(None, "1.0")


def test_this_environment_passes_and_is_printed() -> None:
    report = check_runtime(vllm=False)
    assert report["ok"]
    names = {p["name"] for p in report["probes"]}
    assert {"torch.fully_shard", "torch.get_total_norm", "transformers.logits_to_keep", "python"} <= names
    line = version_line(report)
    assert line.startswith("python 3.") and "torch " in line and "transformers " in line


def test_a_forward_that_swallows_logits_to_keep_is_caught() -> None:
    class OldStyle:  # transformers < 4.50: extra keywords vanish into **kwargs and full logits come back
        def forward(self, input_ids=None, attention_mask=None, **kwargs):  # type: ignore[no-untyped-def]
            return None

    assert not logits_to_keep_probe(OldStyle).ok


def test_too_old_libraries_refuse_to_train(monkeypatch: pytest.MonkeyPatch) -> None:
    real = versions.installed_versions

    def old() -> dict[str, str | None]:
        return {**real(), "torch": "2.4.1", "transformers": "4.46.0"}

    monkeypatch.setattr(versions, "installed_versions", old)
    with pytest.raises(FlexBenchError, match=r"torch: 2\.4\.1 < 2\.6.*transformers: 4\.46\.0 < 4\.56"):
        check_runtime(vllm=False)


def test_training_records_the_versions_in_run_json(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    import json

    from flexbench.train.config import TrainConfig
    from flexbench.train.methods import get_method
    from flexbench.train.run import _check_versions, _write_run
    from flexbench.trainers import TrainRequest

    runtime = _check_versions(type("Acc", (), {"is_main_process": True})())
    assert "[flexbench] versions: python 3." in capsys.readouterr().err
    method = get_method("flexrec")
    request = TrainRequest(method="flexrec", dataset="mock", needs=("interest",), out_dir=tmp_path)
    _write_run(tmp_path, method, request, TrainConfig(model="tiny"), False, method.gain_signal,
               versions=runtime["versions"])
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["versions"]["torch"] == versions.installed_versions()["torch"]
