"""Loading the full-size KuaiRec: ``flexbench data prepare kuairec`` vs a plain pandas ``read_csv``, same run.

Writes the full-scale synthetic KuaiRec (small matrix 4,676,570 rows, big
matrix 12,530,806 rows; ``flexbench data sample kuairec --scale full``) to a
temporary directory (never into the repository), then in fresh child
processes, so that peak memory is each one's own:

1. ``prepare``: the whole ``flexbench data prepare kuairec`` pipeline with the
   model-free ``hash`` encoder, timing its phases (load, embed, build, write);
   the target is load < 60 s and peak RSS < 4 GB on 2 cores, embedding excluded;
2. reference: ``pandas.read_csv`` of the same two matrix files with default
   settings (type inference, C engine), as most KuaiRec code loads them.

    .venv/bin/python benchmarks/bench_data.py [--dir DIR_WITH_FULL_SAMPLE] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREPARE = """
import json, resource, sys, time
from pathlib import Path
from flexbench.datasets.prepare import PrepareConfig, Timings, prepare
t = Timings(); t0 = time.perf_counter()
prepare(PrepareConfig("kuairec", encoder="hash"), Path(sys.argv[1]), Path(sys.argv[2]),
        cache=Path(sys.argv[2]) / "emb", timings=t)
print(json.dumps({"load": t.load, "embed": t.embed, "build": t.build, "write": t.write,
                  "total": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PANDAS = """
import json, resource, sys, time
import pandas as pd
from pathlib import Path
folder = Path(sys.argv[1])
t0 = time.perf_counter()
small = pd.read_csv(folder / "small_matrix.csv")
big = pd.read_csv(folder / "big_matrix.csv")
print(json.dumps({"load": time.perf_counter() - t0, "rows": len(small) + len(big),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="existing full-scale sample (else generated)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flexbench-bench-data-"))
    try:
        root = args.dir
        if root is None:
            from flexbench.datasets.synthetic.kuairec import write_kuairec

            t0 = time.perf_counter()
            write_kuairec(tmp / "raw", "full", 0)
            root = tmp / "raw"
            print(f"generated full-scale synthetic KuaiRec in {time.perf_counter() - t0:.1f} s -> {root}")
        from flexbench.datasets.kuairec import data_dir

        folder = data_dir(root)
        size = sum(p.stat().st_size for p in folder.glob("*_matrix.csv")) / 1e9
        ours = _child(PREPARE, str(root), str(tmp / "prepared"))
        ref = _child(PANDAS, str(folder))
        print(f"matrix files: {size:.2f} GB, {ref['rows']:,} rows")
        print(f"{'':34s}{'load s':>9s}{'peak RSS MB':>13s}")
        print(f"{'flexbench data prepare kuairec':34s}{ours['load']:9.1f}{ours['peak_rss_mb']:13.0f}"
              f"   (embed {ours['embed']:.1f} s, build {ours['build']:.1f} s, write {ours['write']:.1f} s, "
              f"total {ours['total']:.1f} s)")
        print(f"{'pandas.read_csv (defaults)':34s}{ref['load']:9.1f}{ref['peak_rss_mb']:13.0f}")
        ok = ours["load"] < 60 and ours["peak_rss_mb"] < 4096
        print(f"target load < 60 s and peak < 4096 MB: {'met' if ok else 'NOT met'}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
