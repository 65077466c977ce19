"""Full-size synthetic KuaiRec (12.5M + 4.7M rows): prepare loads in < 60 s with < 4 GB peak (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flexbench.datasets.synthetic.kuairec import write_kuairec

pytestmark = pytest.mark.slow

CHILD = """
import json, resource, sys
from pathlib import Path
from flexbench.datasets.prepare import PrepareConfig, Timings, prepare
t = Timings()
ds = prepare(PrepareConfig("kuairec", encoder="hash"), Path(sys.argv[1]), Path(sys.argv[2]),
             cache=Path(sys.argv[2]) / "emb", timings=t)
print(json.dumps({"load": t.load, "n": ds.meta["n_instances"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_full_scale_kuairec_prepare_is_fast_and_lean(tmp_path: Path) -> None:
    folder = write_kuairec(tmp_path / "raw", "full", 0)
    with (folder / "small_matrix.csv").open("rb") as fh:
        assert sum(1 for _ in fh) == 4_676_570 + 1
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "raw"), str(tmp_path / "prepared")],
                         check=True, capture_output=True, text=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["n"] == 7000
    assert stats["load"] < 60, stats
    assert stats["rss_mb"] < 4096, stats
