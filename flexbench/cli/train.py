"""``flexbench train METHOD --dataset D [--need N | --needs all]``: dispatch through the trainer table.

Options for the method come from ``--config FILE`` (YAML or JSON mapping) and
repeated ``--set key=value`` (value parsed as YAML, so ``--set steps=200`` is an
int); ``--set`` wins over the file. The trainer receives a
:class:`~flexbench.trainers.TrainRequest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flexbench.errors import FlexBenchError


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` pairs; values are YAML scalars or lists (``3`` -> int, ``true`` -> bool).

    The value's final type is decided by the option's config field
    (:func:`flexbench.options.parse_options`), so ``lr=1e-6`` (a string to YAML 1.1)
    still becomes a float. Malformed YAML and YAML tags are one-line errors.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FlexBenchError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = _yaml_value(value, f"--set {key.strip()}")
    return out


def load_config_file(path: Path | None, method: str | None = None) -> dict[str, Any]:
    """Read a YAML/JSON mapping of options (``None`` gives ``{}``); its ``methods.<method>`` section applies."""
    if path is None:
        return {}
    from flexbench.train.config import flatten_for_method

    if not path.is_file():
        raise FlexBenchError(f"config file {path} does not exist")
    loaded = _yaml_value(path.read_text(encoding="utf-8", errors="replace"), f"config file {path}")
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise FlexBenchError(f"config file {path} must hold a mapping of option: value")
    return flatten_for_method(loaded, method)


def _yaml_value(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FlexBenchError(f"{where}: not valid YAML ({reason})") from None


def resolve_needs(dataset: str, need: str | None, needs: str | None) -> tuple[str, ...]:
    """One need (``--need``), the paper's needs of the dataset (``--needs all``) or a comma list (``--needs a,b``).

    Any need the dataset stores labels for can be trained on, the v2 label variants
    included; ``all`` is the paper's joint setting (its needs only).
    """
    from flexbench.vocabulary import LABELLED_NEEDS, get_need, needs_of

    paper = needs_of(dataset.removesuffix("-dense"))
    labelled = LABELLED_NEEDS.get(dataset.removesuffix("-dense"), paper)
    if need and needs:
        raise FlexBenchError("give either --need or --needs, not both")
    if needs == "all":
        return paper
    chosen = tuple(n.strip() for n in (needs or need or paper[0]).split(",") if n.strip())
    for name in chosen:
        get_need(name)
        if name not in labelled:
            raise FlexBenchError(f"need {name!r} is not defined on {dataset!r} (it has {', '.join(labelled)})")
    return chosen


def register(app: typer.Typer) -> None:
    """Add the train command to ``app``."""

    @app.command("train")
    def train(
        method: Annotated[str, typer.Argument(help="Method from the trainer table (critic, bert4rec, flexrec, ...).")],
        dataset: Annotated[str, typer.Option(help="Prepared dataset name.")] = "kuairec",
        need: Annotated[str | None, typer.Option(help="Train on one need.")] = None,
        needs: Annotated[str | None, typer.Option(help="'all' for joint training, or a comma list.")] = None,
        model: Annotated[str | None, typer.Option(help="HF model ID or local path (LLM methods).")] = None,
        config: Annotated[Path | None, typer.Option(help="YAML/JSON file of method options.")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override an option: key=value.")] = None,
        out: Annotated[Path | None, typer.Option(help="Checkpoint directory.")] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        resume: Annotated[bool, typer.Option(help="Resume from the last checkpoint in --out.")] = True,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config (JSON) and the memory "
                                              "plan; load nothing.")] = False,
        gpu_memory_gb: Annotated[float | None, typer.Option(help="--dry-run: plan for a GPU of this many GiB "
                                                            "(79.6: 80 GB H100; 139.8: 141 GB H200).")] = None,
        num_gpus: Annotated[int | None, typer.Option(help="--dry-run: plan for this many GPUs (processes).")] = None,
    ) -> None:
        """Train METHOD on DATASET and save a checkpoint that `flexbench eval` can load."""
        from flexbench.catalog import check_dataset
        from flexbench.paths import checkpoint_dir
        from flexbench.trainers import TrainRequest, get_trainer

        entry = get_trainer(method)
        check_dataset(dataset)
        chosen = resolve_needs(dataset, need, needs)
        options = {**load_config_file(config, method), **parse_overrides(set_ or []), **entry.options}
        tag = "all" if needs == "all" else "+".join(chosen)
        out_dir = out or checkpoint_dir(method, dataset, tag if entry.per_need else None)
        request = TrainRequest(method=method, dataset=dataset, needs=chosen, out_dir=out_dir,
                               model=model, seed=seed, resume=resume, options=options)
        if dry_run:
            from flexbench.train.preflight import dry_run as plan_run

            plan_run(request, gpu_memory_gb=gpu_memory_gb, num_gpus=num_gpus)
            return
        saved = entry.load()(request)
        typer.echo(f"saved {method} checkpoint to {saved}")
