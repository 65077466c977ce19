"""Train the critic of a prepared dataset and keep its quality report (paper Appendix G).

:func:`fit_critic` splits the training users' observed interactions 8:1:1
(seeded), trains for ``epochs`` (default 30) with a rich progress bar, saves
``critic.pt`` every time validation MSE improves (an interrupted run keeps its
best critic so far), and writes ``report.json`` with the validation and test
metrics. With ``resume`` a completed run with the same config on the same data
is reused. The layout is :func:`flexbench.train.signal.critic.critic_dir`'s.
``flexbench train critic`` (:mod:`flexbench.cli.critic`) and the automatic
critic of ``flexbench train flexrec`` both call it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.train.signal.critic import CHECKPOINT_NAME, REPORT_NAME, CriticConfig, load_critic

SPLIT = (0.8, 0.1, 0.1)


@dataclass(frozen=True, slots=True)
class CriticFit:
    """What :func:`fit_critic` did: the checkpoint directory, its report, and whether it was reused."""

    out: Path
    report: dict[str, Any]
    reused: bool


def fit_critic(dataset: Any, config: CriticConfig, out: Path, *, resume: bool = True,
               console: Any = None) -> CriticFit:
    """Train (or, with ``resume``, reuse) the critic of ``dataset`` in ``out``."""
    from rich.console import Console

    console = console or Console()
    settings = {"dataset": dataset.name, "fingerprint": dataset.fingerprint, "split": list(SPLIT),
                "config": _jsonable(asdict(config))}
    previous = read_report(out)
    if resume and previous and previous.get("complete") and previous.get("settings") == settings:
        try:
            load_critic(out)  # a truncated critic.pt is trained again, not "reused" and failing later
            return CriticFit(out, previous, reused=True)
        except FlexBenchError as err:
            console.print(f"{err}; training it again", highlight=False)
    return CriticFit(out, _train_and_save(dataset, config, out, settings, console), reused=False)


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


def read_report(out: Path) -> dict[str, Any] | None:
    path = out / REPORT_NAME
    if not (path.exists() and (out / CHECKPOINT_NAME).exists()):
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{REPORT_NAME}.tmp"
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    os.replace(tmp, out / REPORT_NAME)


def _jsonable(value: Any) -> Any:
    """Tuples -> lists, so a config compares equal after a JSON round trip."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
