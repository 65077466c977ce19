"""``flexbench data fetch|sample|prepare`` (issue: datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from flexbench.audit import AuditRow
    from flexbench.prepared import PreparedDataset

app = typer.Typer(help="Download, synthesise and prepare datasets.", no_args_is_help=True)

Dataset = Annotated[str, typer.Argument(help="kuairec, ml-1m or esci")]


@app.command()
def fetch(
    dataset: Dataset,
    dir: Annotated[Path | None, typer.Option("--dir", help="where to put the files [default: <data>/raw]")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="check the published checksum")] = True,
    base_url: Annotated[str | None, typer.Option("--base-url", help="mirror serving the same file names")] = None,
) -> None:
    """Download the official files (progress bar, resume, checksum), unpack them and say where they went."""
    from flexbench.datasets.fetch import fetch as do_fetch
    from flexbench.paths import raw_dir

    target = dir if dir is not None else raw_dir()
    for path in do_fetch(dataset, target, verify=verify, base_url=base_url):
        typer.echo(f"{dataset}: {path}")
    typer.echo(f"prepare with: flexbench data prepare {dataset} --raw-dir {target}")


@app.command()
def sample(
    dataset: Dataset,
    out: Annotated[Path | None, typer.Option("--out", help="output folder [default: data/sample/<dataset>]")] = None,
    scale: Annotated[str, typer.Option(
        "--scale", help="small (bundled), medium (kuairec: >= 30 test users) or full (official sizes)")] = "small",
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write a synthetic dataset in the official file layout and formats."""
    from flexbench.datasets.synthetic import MEDIUM, SCALES, writer
    from flexbench.errors import FlexBenchError
    from flexbench.vocabulary import PAPER_DATASETS

    if scale not in SCALES:
        raise FlexBenchError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if dataset not in PAPER_DATASETS:
        raise FlexBenchError(f"unknown dataset {dataset!r}; choose kuairec, ml-1m or esci")
    if scale == "medium" and dataset not in MEDIUM:
        raise FlexBenchError(f"--scale medium exists for {', '.join(MEDIUM)} only; use small or full for {dataset}")
    target = out if out is not None else Path("data") / "sample" / dataset
    folder = writer(dataset)(target, scale, seed)
    typer.echo(f"wrote synthetic {dataset} ({scale}) to {folder}")


@app.command()
def prepare(
    dataset: Annotated[str, typer.Argument(help="kuairec, kuairec-dense, ml-1m or esci")],
    raw_dir: Annotated[Path | None, typer.Option("--raw-dir", help="official files [default: bundled sample]")] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="sparse or dense (KuaiRec training labels)")] = None,
    out_root: Annotated[Path | None, typer.Option("--out-root", help="[default: <data>/prepared]")] = None,
    encoder: Annotated[str | None, typer.Option(
        "--encoder", help="sentence-transformers model (ID or path), or 'hash' [default: all-MiniLM-L6-v2]")] = None,
    n_train: Annotated[int | None, typer.Option("--n-train", help="[default: 5000]")] = None,
    n_valid: Annotated[int | None, typer.Option("--n-valid", help="[default: 1000]")] = None,
    n_test: Annotated[int | None, typer.Option("--n-test", help="[default: 1000]")] = None,
    k: Annotated[int | None, typer.Option("--k", help="candidates per instance [default: 30]")] = None,
    history_len: Annotated[int | None, typer.Option("--history-len", help="[default: 10]")] = None,
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="KuaiRec observable fraction [default: 0.1]")]
    = None,
    seed: Annotated[int | None, typer.Option("--seed", help="[default: 0]")] = None,
    filler: Annotated[str | None, typer.Option(
        "--filler", help="ML-1M unrated fillers: popularity-matched (default) or top-retrieved (protocol 1)")] = None,
) -> None:
    """Build instances, candidates and need labels, and write the prepared dataset."""
    from flexbench.datasets.prepare import PrepareConfig, Timings
    from flexbench.datasets.prepare import prepare as do_prepare
    from flexbench.paths import prepared_dir

    if dataset == "kuairec-dense":
        dataset, variant = "kuairec", variant or "dense"
    build = {} if filler is None else {"filler": filler}
    given = {"encoder": encoder, "n_train": n_train, "n_valid": n_valid, "n_test": n_test, "k": k,
             "history_len": history_len, "sparsity": sparsity, "seed": seed}  # unset: PrepareConfig's defaults
    cfg = PrepareConfig(dataset, variant=variant or "sparse", build=build,
                        **{name: value for name, value in given.items() if value is not None})
    timings = Timings()
    out = do_prepare(cfg, raw_dir, out_root if out_root is not None else prepared_dir(), timings=timings)
    typer.echo(f"prepared {out.name}: {out.meta['n_instances']} instances, needs {', '.join(out.needs)} -> "
               f"{out.root} (fingerprint {out.fingerprint[:12]}; load {timings.load:.1f}s, "
               f"embed {timings.embed:.1f}s, build {timings.build:.1f}s, write {timings.write:.1f}s)")


@app.command()
def audit(
    dataset: Annotated[str, typer.Argument(help="prepared dataset: kuairec, kuairec-dense, ml-1m, esci or mock")],
    split: Annotated[str, typer.Option("--split", help="train, valid or test")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", help="audit at most this many instances")] = None,
    fidelity: Annotated[bool, typer.Option("--fidelity/--no-fidelity",
                                           help="marginals against the real dataset and difficulty checks")] = True,
) -> None:
    """Per need: reference rankers / retriever / oracle NDCG@5, niche share, label density; then fidelity."""
    from rich.console import Console
    from rich.table import Table

    from flexbench.audit import audit_dataset, popularity_auc
    from flexbench.catalog import open_dataset

    data = open_dataset(dataset)
    rows = audit_dataset(data, split, limit=limit)
    names = list(rows[0].scores)
    protocol = "hand-built, no protocol" if data.protocol_version is None else f"protocol {data.protocol_version}"
    table = Table(title=f"{data.name} audit ({split}, n={rows[0].n_instances}, NDCG@5; {protocol})")
    for col in ("need", *names, "niche share", "label density"):
        table.add_column(col, justify="left" if col == "need" else "right")
    for row in rows:
        cells = ["-" if row.scores[n] is None else f"{row.scores[n]:.3f}" for n in names]
        niche = "-" if row.niche_share is None else f"{row.niche_share:.3f}"
        table.add_row(row.need, *cells, niche, f"{row.label_density:.3f}")
    console = Console(soft_wrap=True, width=max(Console().width, 140))
    console.print(table)
    interest = next((row for row in rows if row.need == "interest"), None)
    sparse = interest is not None and interest.label_density <= 0.9   # fillers: >= 10% zero-gain candidates
    auc = popularity_auc(data, "interest", split) if sparse else None
    if auc is not None:
        console.print(f"interest: popularity AUC of labelled (gain > 0) against zero-gain candidates {auc:.3f} "
                      f"(0.5: popularity cannot tell them apart)", highlight=False)
    for row in rows:
        for line in row.warnings:
            console.print(f"{row.need}: {line}", highlight=False)
    if fidelity and data.name != "mock":
        _print_fidelity(console, data, rows, split, limit)


def _print_fidelity(console: Console, data: PreparedDataset, rows: list[AuditRow], split: str,
                    limit: int | None) -> None:
    """The fidelity section (:mod:`flexbench.fidelity`): marginals beside the real ones, difficulty checks."""
    from rich.table import Table

    from flexbench.audit import need_switch
    from flexbench.fidelity import difficulty_checks, marginal_rows

    source = Path(str(data.meta.get("config", {}).get("source", "")))
    title = f"{data.dataset} fidelity: raw files {source} against the real dataset"
    if source.is_dir():
        table = Table(title=title)
        for col in ("statistic", "real", "sample", "tolerance", "", "source"):
            table.add_column(col, justify="left" if col in ("statistic", "source") else "right")
        for r in marginal_rows(data.dataset, source):
            mark = "-" if r.passed is None else "ok" if r.passed else "FAIL"
            value = "-" if r.value is None else f"{r.value:.3f}"
            table.add_row(r.stat.name, f"{r.stat.real:g}", value, r.stat.tolerance, mark, r.stat.source)
        console.print(table)
    else:
        console.print(f"{title}: the raw files are gone, marginals skipped", highlight=False)
    switch = need_switch(data, split, limit=limit)
    if switch is not None:
        console.print(f"need switch (NDCG@5 of the row need's oracle on the column need's labels):\n"
                      f"{switch.round(3).to_string()}", highlight=False)
    checks = difficulty_checks(data.dataset, {row.need: row.scores for row in rows}, switch)
    bad = [c for c in checks if c.status != "ok"]
    console.print(f"difficulty: {len(checks) - len(bad)} of {len(checks)} checks pass (reference rankers at least "
                  f"0.2 below the oracle, oracles at most 0.85 on other needs, STAR on ESCI at most 0.6)",
                  highlight=False)
    for c in bad:
        why = f" (by construction: {c.known})" if c.known else ""
        console.print(f"  {c.status} {c.kind}: {c.what} on {c.need} {c.value:.3f} > {c.limit:.3f}{why}",
                      highlight=False)
