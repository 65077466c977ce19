"""``flexbench rankers`` and ``flexbench eval`` (thin handlers; ``leaderboard`` is :mod:`flexbench.cli.leaderboard`).

Examples::

    flexbench rankers
    flexbench eval oracle-interest --dataset mock --need interest --limit 10
    flexbench eval zero-shot --dataset kuairec --need novelty --model smollm2 --set batch_size=2
    flexbench eval zero-shot --dataset kuairec --need interest --limit 20 --permutations 3
    flexbench eval --all [--datasets kuairec,esci] [--limit 50] [--llm-limit 2] [--permutations 3]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from flexbench.cli.leaderboard import show_leaderboard
from flexbench.errors import FlexBenchError
from flexbench.harness import DEFAULT_BATCH_SIZE


def _console() -> Any:
    from rich.console import Console

    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped or captured: wide enough for a leaderboard row
        console.width = max(console.width, 160)
    return console


def ranker_options(model: str | None, checkpoint: Path | None, base_url: str | None,
                   pairs: list[str] | None) -> dict[str, Any]:
    """``--model/--checkpoint/--base-url`` and ``--set key=value`` as RankerContext options."""
    from flexbench.cli.train import parse_overrides

    options = parse_overrides(pairs or [])
    named = {"model": model, "checkpoint": None if checkpoint is None else str(checkpoint),
             "base_url": base_url}
    options.update({k: v for k, v in named.items() if v is not None})
    return options


@contextlib.contextmanager
def _resumable() -> Iterator[None]:
    """Turn Ctrl-C into a one-line note: every finished batch is stored, a rerun resumes."""
    try:
        yield
    except KeyboardInterrupt:
        _console().print("interrupted: finished batches are stored; rerun the same command to resume")
        raise typer.Exit(130) from None


def _split_names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _eval_all(datasets: list[str] | None, limit: int | None, llm_limit: int, seed: int, strict: bool,
              overwrite: bool, markdown_dir: Path | None, permutations: int = 1, train: bool = True) -> None:
    from flexbench.results import ResultStore
    from flexbench.suite import SUITE_DATASETS, run_all

    console = _console()
    chosen = _split_names(datasets) or list(SUITE_DATASETS)
    report = run_all(store=ResultStore(), datasets=chosen, limit=limit, llm_limit=llm_limit or None,
                     seed=seed, strict=strict, overwrite=overwrite, say=lambda s: console.print(s, highlight=False),
                     progress=True, permutations=permutations, train_missing=train)
    show_leaderboard(None, markdown_dir, chosen)
    console.print(f"{len(report.ran)} runs, {len(report.skipped)} skipped, {len(report.failed)} failed")
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the rankers and eval commands to ``app``."""

    @app.command("rankers")
    def rankers() -> None:
        """List every registered ranker (and installed plugin) with its kind and description."""
        from rich.table import Table

        from flexbench.plugins import all_entries, shadowed

        entries = all_entries()
        table = Table(title=f"{len(entries)} registered rankers", title_justify="left")
        for column in ("name", "kind", "description"):
            table.add_column(column)
        for entry in entries.values():
            table.add_row(entry.name, entry.kind.value, entry.description)
        _console().print(table)
        for name in shadowed():
            _console().print(f"plugin {name!r} ignored: a built-in ranker has that name")

    @app.command("eval")
    def eval_(
        ranker: Annotated[str | None, typer.Argument(help="Registered ranker (see `flexbench rankers`).")] = None,
        dataset: Annotated[str | None, typer.Option(help="Dataset: kuairec, ml-1m, esci, kuairec-dense, mock.")] = None,
        need: Annotated[str | None, typer.Option(help="Need to score (default: every need of the dataset).")] = None,
        split: Annotated[str, typer.Option(help="Split to evaluate.")] = "test",
        limit: Annotated[int | None, typer.Option(help="Only the first n instances.")] = None,
        seed: Annotated[int, typer.Option(help="Seed of the ranker and of the repair padding.")] = 0,
        strict: Annotated[bool, typer.Option(help="Score unparseable outputs 0 instead of repairing.")] = False,
        overwrite: Annotated[bool, typer.Option(help="Discard a stored run instead of resuming it.")] = False,
        model: Annotated[str | None, typer.Option(help="Model ID or path (LLM rankers).")] = None,
        checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint directory (trained rankers).")] = None,
        base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint.")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Ranker option key=value.")] = None,
        batch_size: Annotated[int, typer.Option(help="Instances per ranker call.")] = DEFAULT_BATCH_SIZE,
        permutations: Annotated[int, typer.Option(
            help="Rank each instance under P display orders seeded by (seed, instance, p); the board shows "
                 "the mean and the order spread, first-slot share and Kendall tau.")] = 1,
        all_: Annotated[bool, typer.Option("--all", help="Every ranker on every dataset/need.")] = False,
        datasets: Annotated[list[str] | None, typer.Option(help="With --all: datasets (comma list).")] = None,
        llm_limit: Annotated[int, typer.Option(help="With --all: instances for LLM/trained rankers (0: all).")] = 2,
        markdown_dir: Annotated[Path, typer.Option(help="With --all: where to write the Markdown.")] = Path(
            "leaderboards"),
        train: Annotated[bool, typer.Option(
            "--train/--no-train", help="With --all: train a missing BERT4Rec checkpoint per dataset first "
                                       "(about 3 min each on one core).")] = True,
    ) -> None:
        """Evaluate RANKER on a dataset's need(s), or every ranker with --all; results resume on rerun."""
        if all_:
            if ranker is not None:
                raise FlexBenchError("give either a RANKER or --all, not both")
            with _resumable():
                _eval_all(datasets, limit, llm_limit, seed, strict, overwrite, markdown_dir, permutations, train)
            return
        if ranker is None or dataset is None:
            raise FlexBenchError("usage: flexbench eval RANKER --dataset D [--need N], or flexbench eval --all")
        with _resumable():
            _eval_one(ranker, dataset, need, ranker_options(model, checkpoint, base_url, set_), split=split,
                      limit=limit, seed=seed, strict=strict, overwrite=overwrite, batch_size=batch_size,
                      permutations=permutations)


def _eval_one(ranker: str, dataset: str, need: str | None, options: dict[str, Any], **request: Any) -> None:
    from flexbench.results import ResultStore
    from flexbench.suite import run_evals

    console = _console()
    store = ResultStore()
    for result in run_evals(ranker, dataset, [need] if need else None, store=store, progress=True,
                            options=options, **request):
        values = "  ".join(f"{k}={v:.4f}" for k, v in result.metrics.items())
        rates = "  ".join(f"{k}={v:.3f}" for k, v in result.rates.items())
        console.print(f"{result.key.ranker} {result.key.dataset}/{result.key.need}/{result.key.split} "
                      f"n={result.n_instances}  {values}  {rates}", highlight=False)
        console.print(f"  {_order_line(store, result)}", highlight=False)


def _order_line(store: Any, result: Any) -> str:
    """The run's order-robustness columns (:mod:`flexbench.order_stats`) in one line."""
    from flexbench.order_stats import merge_trials, order_stats

    trials = store.load_trials(result.key)
    ids = {r.instance_id for r in merge_trials(trials)[:result.n_instances]}
    o = order_stats([t for t in trials if t.instance_id in ids], int(result.provenance.get("seed") or 0))
    if o is None:
        return "no rankings stored"
    spread = "not measured (P = 1)" if o.spread is None else f"{o.spread:.4f}"
    return (f"{len(ids) * o.permutations} rankings under P = {o.permutations} display orders: order spread "
            f"{spread}, first-slot share {100 * o.first_slot_share:.1f}% (chance {100 * o.chance:.1f}%), "
            f"Kendall tau to the display order {o.kendall_tau:+.3f}")
