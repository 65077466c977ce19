"""``flexbench train critic --dataset D``: train the critic on a prepared dataset's observed interactions.

Splits the training users' observed interactions 8:1:1 (seeded), trains for
``epochs`` (default 30) with a rich progress bar, saves ``critic.pt`` every time
validation MSE improves (an interrupted run keeps its best critic so far), and
writes ``report.json`` with the validation and test metrics. With ``resume``
(the default) a completed run with the same config on the same data is reused.
Options (``--set key=value``) are the fields of
:class:`~flexbench.train.signal.critic.CriticConfig`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flexbench.trainers import TrainRequest

SPLIT = (0.8, 0.1, 0.1)


def train_critic_command(request: TrainRequest) -> Path:
    """Train, save and report the critic for ``request.dataset``; return the checkpoint directory."""
    from rich.console import Console

    from flexbench.catalog import open_dataset
    from flexbench.train.signal.critic import CriticConfig

    console = Console()
    dataset = open_dataset(request.dataset)
    config = CriticConfig.from_options(request.options, seed=request.seed)
    out = Path(request.out_dir)
    settings = {
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint,
        "split": list(SPLIT),
        "config": _jsonable(asdict(config)),
    }
    previous = _read_report(out)
    if request.resume and previous and previous.get("complete") and previous.get("settings") == settings:
        console.print(f"critic already trained in {out} (same data and config); reusing it")
        _print_table(console, previous)
        return out
    report = _train_and_save(dataset, config, out, settings, console)
    _print_table(console, report)
    return out


def _train_and_save(
    dataset: Any, config: Any, out: Path, settings: dict[str, Any], console: Any
) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flexbench.train.signal.critic import evaluate_critic, save_critic, train_critic
    from flexbench.train.signal.critic_data import dataset_examples, split_indices

    item_ids, embeddings, examples = dataset_examples(dataset, config.history_len)
    train, valid, test = (examples.subset(i) for i in split_indices(len(examples), SPLIT, config.seed))
    console.print(
        f"critic on {dataset.name}: {len(train)} train / {len(valid)} valid / {len(test)} test "
        f"interactions, {len(item_ids)} items"
    )
    report: dict[str, Any] = {
        "settings": settings,
        "complete": False,
        "epochs": [],
        "n_examples": {"train": len(train), "valid": len(valid), "test": len(test)},
    }
    columns = (
        TextColumn("[bold]critic"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("critic", total=config.epochs, info="")

        def on_epoch(epoch: int, loss: float, valid_report: Any) -> None:
            report["epochs"].append({"epoch": epoch, "train_loss": loss, "valid_mse": valid_report.mse})
            progress.update(task, advance=1, info=f"loss {loss:.4f}  valid MSE {valid_report.mse:.4f}")

        def on_improve(critic: Any, epoch: int, valid_report: Any) -> None:
            save_critic(critic, out)
            report.update(best_epoch=epoch, valid=_metrics(valid_report))
            _write_report(out, report)

        try:
            critic, best_epoch = train_critic(
                train, valid, item_ids, embeddings, config, on_epoch=on_epoch, on_improve=on_improve
            )
        finally:
            _write_report(out, report)
    save_critic(critic, out)
    report.update(
        best_epoch=best_epoch,
        valid=_metrics(evaluate_critic(critic, valid)),
        test=_metrics(evaluate_critic(critic, test)),
        complete=True,
    )
    _write_report(out, report)
    return report


def _metrics(report: Any) -> dict[str, float | int | None]:
    """CriticReport -> JSON-safe dict (an undefined Pearson is stored as null)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(report).items()}


def _print_table(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"critic (best epoch {report.get('best_epoch')})")
    for column in ("split", "MSE", "MAE", "Pearson(mean)", "Pearson(var)", "n"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split in ("valid", "test"):
        m = report.get(split)
        if m:
            table.add_row(
                split, *(_fmt(m[k]) for k in ("mse", "mae", "pearson_mean", "pearson_var")), str(m["n"])
            )
    console.print(table)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _read_report(out: Path) -> dict[str, Any] | None:
    path = out / "report.json"
    if not (path.exists() and (out / "critic.pt").exists()):
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    os.replace(tmp, out / "report.json")


def _jsonable(value: Any) -> Any:
    """Tuples -> lists, so a config compares equal after a JSON round trip."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
