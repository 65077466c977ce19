"""``flexbench train --need/--needs``: which needs a dataset can be trained on."""

from __future__ import annotations

import pytest

from flexbench.cli.train import resolve_needs
from flexbench.errors import FlexBenchError


def test_v2_label_variants_are_trainable_but_all_is_the_papers_joint_setting() -> None:
    assert resolve_needs("kuairec", "novelty-v2", None) == ("novelty-v2",)
    assert resolve_needs("kuairec-dense", None, "interest,trend-v2") == ("interest", "trend-v2")
    assert resolve_needs("kuairec", None, "all") == ("interest", "novelty", "trend")
    assert resolve_needs("ml-1m", None, None) == ("interest",)
    with pytest.raises(FlexBenchError, match="not defined on 'esci'"):
        resolve_needs("esci", "novelty-v2", None)
    with pytest.raises(FlexBenchError, match="either --need or --needs"):
        resolve_needs("kuairec", "interest", "all")
