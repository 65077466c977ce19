"""``flexbench data fetch|sample|prepare`` (issue: datasets)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Download, synthesise and prepare datasets.", no_args_is_help=True)

_DATASET = typer.Argument(..., help="kuairec, ml-1m or esci")


@app.command()
def fetch(dataset: str = _DATASET,
          dir: Path = typer.Option(None, "--dir", help="where to put the files [default: <data>/raw]"),
          verify: bool = typer.Option(True, "--verify/--no-verify", help="check the published checksum"),
          base_url: str = typer.Option(None, "--base-url", help="mirror serving the same file names")) -> None:
    """Download the official files (progress bar, resume, checksum), unpack them and say where they went."""
    from flexbench.datasets.fetch import fetch as do_fetch
    from flexbench.paths import raw_dir

    target = dir if dir is not None else raw_dir()
    for path in do_fetch(dataset, target, verify=verify, base_url=base_url):
        typer.echo(f"{dataset}: {path}")
    typer.echo(f"prepare with: flexbench data prepare {dataset} --raw-dir {target}")


@app.command()
def sample(dataset: str = _DATASET,
           out: Path = typer.Option(None, "--out", help="output folder [default: data/sample/<dataset>]"),
           scale: str = typer.Option("small", "--scale", help="small (bundled) or full (official sizes)"),
           seed: int = typer.Option(0, "--seed")) -> None:
    """Write a synthetic dataset in the official file layout and formats."""
    from flexbench.datasets.synthetic import SCALES, writer
    from flexbench.errors import FlexBenchError

    if scale not in SCALES:
        raise FlexBenchError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if dataset not in ("kuairec", "ml-1m", "esci"):
        raise FlexBenchError(f"unknown dataset {dataset!r}; choose kuairec, ml-1m or esci")
    target = out if out is not None else Path("data") / "sample" / dataset
    folder = writer(dataset)(target, scale, seed)
    typer.echo(f"wrote synthetic {dataset} ({scale}) to {folder}")


@app.command()
def prepare(dataset: str = typer.Argument(..., help="kuairec, kuairec-dense, ml-1m or esci"),
            raw_dir: Path = typer.Option(None, "--raw-dir", help="official files [default: bundled sample]"),
            variant: str = typer.Option(None, "--variant", help="sparse or dense (KuaiRec training labels)"),
            out_root: Path = typer.Option(None, "--out-root", help="[default: <data>/prepared]"),
            encoder: str = typer.Option("all-MiniLM-L6-v2", "--encoder",
                                        help="sentence-transformers model (ID or path), or 'hash'"),
            n_train: int = typer.Option(5000, "--n-train"), n_valid: int = typer.Option(1000, "--n-valid"),
            n_test: int = typer.Option(1000, "--n-test"), k: int = typer.Option(30, "--k"),
            history_len: int = typer.Option(10, "--history-len"),
            sparsity: float = typer.Option(0.1, "--sparsity", help="KuaiRec observable fraction"),
            seed: int = typer.Option(0, "--seed")) -> None:
    """Build instances, candidates and need labels, and write the prepared dataset."""
    from flexbench.datasets.prepare import PrepareConfig, Timings
    from flexbench.datasets.prepare import prepare as do_prepare
    from flexbench.paths import prepared_dir

    if dataset == "kuairec-dense":
        dataset, variant = "kuairec", variant or "dense"
    cfg = PrepareConfig(dataset, variant=variant or "sparse", encoder=encoder, n_train=n_train, n_valid=n_valid,
                        n_test=n_test, k=k, history_len=history_len, sparsity=sparsity, seed=seed)
    timings = Timings()
    out = do_prepare(cfg, raw_dir, out_root if out_root is not None else prepared_dir(), timings=timings)
    typer.echo(f"prepared {out.name}: {out.meta['n_instances']} instances, needs {', '.join(out.needs)} -> "
               f"{out.root} (fingerprint {out.fingerprint[:12]}; load {timings.load:.1f}s, "
               f"embed {timings.embed:.1f}s, build {timings.build:.1f}s, write {timings.write:.1f}s)")
