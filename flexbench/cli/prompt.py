"""``flexbench prompt``: print the exact prompt an LLM ranker sees for one instance (issue 14)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the prompt command to ``app``."""

    @app.command("prompt")
    def prompt(
        dataset: Annotated[str, typer.Option(help="Prepared dataset name.")] = "kuairec",
        need: Annotated[str, typer.Option(help="Need whose instruction and signals the prompt shows.")] = "interest",
        index: Annotated[int, typer.Option(help="Position of the instance within the split.")] = 0,
        split: Annotated[str, typer.Option(help="train, valid or test.")] = "test",
        seed: Annotated[int, typer.Option(help="Seed of the shown candidate order (the ranker's seed).")] = 0,
        mode: Annotated[str, typer.Option(help="Answer format: ids or reason.")] = "ids",
        model: Annotated[str | None, typer.Option(help="Apply this model's chat template (e.g. smollm2).")] = None,
        max_item_chars: Annotated[int, typer.Option(help="Item text cut (the LLM rankers' default).")] = 300,
    ) -> None:
        """Print the prompt of instance INDEX of SPLIT for NEED, as `zero-shot` builds it."""
        from flexbench.catalog import open_dataset
        from flexbench.errors import FlexBenchError
        from flexbench.llm.prompts import build_prompt
        from flexbench.suite import check_need
        from flexbench.vocabulary import get_need

        data = open_dataset(dataset)
        check_need(data, need)
        instances = data.instances(split)
        if not 0 <= index < len(instances):
            raise FlexBenchError(f"--index {index} is out of range: {data.name!r} has {len(instances)} "
                                 f"{split!r} instances")
        tokenizer = None
        if model is not None:
            from flexbench.llm.models import load_tokenizer
            from flexbench.paths import cache_dir

            tokenizer = load_tokenizer(model, cache_root=cache_dir())
        built = build_prompt(instances[index], get_need(need), seed=seed, tokenizer=tokenizer,
                             max_item_chars=max_item_chars, mode=mode)
        typer.echo(f"# {data.name} / {need} / {split} #{index}: {instances[index].instance_id}", err=True)
        typer.echo(built.text)
