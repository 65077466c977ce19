"""``flexbench data audit``: the warnings logic, the canary on the mock (retriever-ordered) and the CLI."""

from __future__ import annotations

from typer.testing import CliRunner

from flexbench.audit import audit_dataset, niche_share, row_warnings
from flexbench.cli import app


def test_warnings_name_trivial_rankers_near_the_oracle_and_an_informative_order() -> None:
    clean = {"random": 0.40, "candidate-order": 0.42, "popularity": 0.50, "retriever": 0.70, "oracle": 1.0}
    assert row_warnings(clean) == []
    leaky = {**clean, "candidate-order": 0.95, "retriever": 0.95}
    lines = row_warnings(leaky)
    assert any("candidate-order 0.950 is within 0.1 of the oracle" in w for w in lines)
    assert any("stored candidate order (0.950) is 0.550 from random" in w for w in lines)
    assert any(w.startswith("note: ranking by the retriever") for w in lines)
    assert row_warnings({**clean, "popularity": None, "retriever": None}) == []


def test_mock_dataset_keeps_the_retriever_order_and_the_audit_says_so(mock_dataset) -> None:
    rows = {row.need: row for row in audit_dataset(mock_dataset)}
    assert set(rows) == {"interest", "novelty", "trend"}
    for row in rows.values():
        assert row.scores["oracle"] == 1.0 and row.scores["retriever"] is None   # the mock stores no scores
        assert 0 < row.label_density <= 1
    assert any("stored candidate order" in w for w in rows["novelty"].warnings)
    share = niche_share(mock_dataset, mock_dataset.instances("test"))
    assert share is not None and 0 <= share < 1


def test_cli_audit_prints_the_table_and_warnings(data_root) -> None:
    out = CliRunner().invoke(app, ["data", "audit", "mock"])
    assert out.exit_code == 0, out.output
    assert "candidate-order" in out.output and "label density" in out.output and "WARNING" in out.output
