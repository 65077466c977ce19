"""``flexbench tables``: writes every output, and a rerun on the same store gives identical bytes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flexbench.cli import app
from flexbench.results import ResultStore

EXPECTED = {"table1.md", "table2.md", "table3.md", "table6.md", "table7.md", "table8.md", "table9.md",
            "critic.md", "figures.md", "index.html", "figure3-kuairec.png", "figure4-kuairec.png",
            "figure2.md", "figure2-kuairec.png", "figure2-ml-1m.png"}


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_rerun_is_byte_identical(fixed_store: ResultStore, fixed_checkpoints: Path, tmp_path: Path) -> None:
    args = ["tables", "--results", str(fixed_store.root), "--checkpoints", str(fixed_checkpoints)]
    _run([*args, "--out", str(tmp_path / "a")])
    first = _snapshot(tmp_path / "a")
    assert set(first) == EXPECTED
    output = _run([*args, "--out", str(tmp_path / "a")])  # in place, over its own files
    _run([*args, "--out", str(tmp_path / "b")])  # into a fresh directory
    assert _snapshot(tmp_path / "a") == first == _snapshot(tmp_path / "b")
    assert "from 10 stored runs" in output


def test_empty_store_renders_every_cell_missing(data_root: Path, tmp_path: Path) -> None:
    output = _run(["tables", "--out", str(tmp_path / "out")])
    assert "No stored runs" in output
    table = (tmp_path / "out" / "table1.md").read_text(encoding="utf-8")
    assert "— (0.597)" in table and "Provenance: no stored runs" in table


def test_paper_setting_on_cpu_says_what_it_would_run(fixed_store: ResultStore, tmp_path: Path,
                                                     monkeypatch) -> None:
    monkeypatch.setattr("flexbench.cli.tables._has_cuda", lambda: False)
    output = _run(["tables", "--paper-setting", "--results", str(fixed_store.root),
                   "--checkpoints", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert "5,000 training / 1,000 test instances" in output and "K = 30" in output
    assert "Qwen/Qwen2.5-3B-Instruct" in output and "Falling back to the bundled sample" in output
    assert "0.553" in (tmp_path / "out" / "table1.md").read_text(encoding="utf-8")  # sample runs rendered
