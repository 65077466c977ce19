"""``check_ranker``: the public conformance check for rankers, built-in or external.

Plugin authors call it from their own tests::

    from flexbench.testing import check_ranker
    from my_pkg.rankers import make

    def test_my_ranker_conforms(tmp_path):
        report = check_ranker(make, workdir=tmp_path)
        assert report.n_instances > 0

It builds the ranker from ``factory`` with a :class:`~flexbench.ranker.RankerContext`
on the built-in mock dataset (or the ``dataset`` given), exactly as ``flexbench
eval`` does, and checks on a few test instances of every need:

1. the factory returns something with a non-empty string ``name`` and
   ``rank(instances, need)`` (the default hooks are added to a minimal ranker);
2. ``check_available(need)`` and ``provenance(need)`` work, and the provenance
   is a JSON-serialisable mapping;
3. ``rank`` returns one :class:`~flexbench.types.Ranking` per instance, in input
   order, with the instance's ID and string item IDs (the harness's own check);
4. each instance's ranking does not depend on its batch: ranked alone, and in
   the reversed batch, it comes out the same (skip with ``batch_independent=False``);
5. ranking the same batch twice gives the same output (``deterministic=False`` skips it);
6. the harness scores the output (repair, metrics) without error; invalid IDs,
   duplicates and short lists are allowed and reported, not failures.

Any failed check raises :class:`RankerConformanceError` listing every failure.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.prepared import PreparedDataset
from flexbench.ranker import Ranker, RankerContext, as_ranker
from flexbench.types import Instance, NeedSpec, Ranking


class RankerConformanceError(FlexBenchError):
    """A ranker failed :func:`check_ranker`; the message lists every failed check."""


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    """What :func:`check_ranker` ran: the ranker's name, needs, instances per need and the scores it got."""

    name: str
    needs: tuple[str, ...]
    n_instances: int
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # need -> metric -> mean
    rates: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # need -> rate -> value


def _mock(workdir: Path | None) -> PreparedDataset:
    from flexbench.mock import write_mock_dataset

    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="flexbench-check-"))
    path = root / "mock"
    return PreparedDataset(path) if (path / "meta.json").exists() else write_mock_dataset(path)


def _same(a: Sequence[Ranking], b: Sequence[Ranking]) -> bool:
    return [(r.instance_id, tuple(r.item_ids)) for r in a] == [(r.instance_id, tuple(r.item_ids)) for r in b]


def _check_batch(ranker: Ranker, batch: Sequence[Instance], need: NeedSpec, *, deterministic: bool,
                 batch_independent: bool, failures: list[str]) -> list[Ranking] | None:
    from flexbench.harness import RankerOutputError, check_rankings

    out = ranker.rank(list(batch), need)
    try:
        check_rankings(ranker, batch, out)
    except RankerOutputError as err:
        failures.append(f"{need.name}: {err}")
        return None
    bad = [r.instance_id for r in out if not all(isinstance(i, str) for i in r.item_ids)]
    if bad:
        failures.append(f"{need.name}: item IDs must be strings (instance {bad[0]!r})")
    if deterministic and not _same(out, ranker.rank(list(batch), need)):
        failures.append(f"{need.name}: ranking the same batch twice gave different outputs (seed your "
                        f"randomness with ctx.seed and the instance ID, or pass deterministic=False)")
    if batch_independent:
        alone = [r for x in batch for r in ranker.rank([x], need)]
        reverse = list(reversed(ranker.rank(list(reversed(batch)), need)))
        if not (_same(out, alone) and _same(out, reverse)):
            failures.append(f"{need.name}: an instance's ranking depends on the other instances of its batch "
                            f"(pass batch_independent=False if that is intended)")
    return out


def _check_hooks(ranker: Ranker, need: str, failures: list[str]) -> None:
    try:
        ranker.check_available(need)
        prov = ranker.provenance(need)
    except FlexBenchError as err:
        failures.append(f"{need}: hook raised {type(err).__name__}: {err}")
        return
    if not isinstance(prov, Mapping):
        failures.append(f"{need}: provenance(need) returned {type(prov).__name__}, expected a mapping")
        return
    try:
        json.dumps(dict(prov))
    except (TypeError, ValueError) as err:
        failures.append(f"{need}: provenance(need) is not JSON-serialisable ({err})")


def check_ranker(factory: Callable[[RankerContext], Any], *, dataset: PreparedDataset | None = None,
                 needs: Sequence[str] | None = None, n_instances: int = 8, options: Mapping[str, Any] | None = None,
                 seed: int = 0, deterministic: bool = True, batch_independent: bool = True,
                 workdir: Path | None = None) -> ConformanceReport:
    """Build ``factory``'s ranker and run the checks of the module docstring; raise on any failure.

    ``dataset`` defaults to the mock dataset (written under ``workdir``, default
    a fresh temporary directory); ``needs`` to every need of the dataset.
    """
    from flexbench.harness import evaluate
    from flexbench.vocabulary import get_need

    data = dataset if dataset is not None else _mock(workdir)
    cache = Path(workdir) / "cache" if workdir is not None else data.root.parent / "cache"
    ctx = RankerContext(data, seed, dict(options or {}), cache)
    try:
        ranker = as_ranker(factory(ctx), f"factory {getattr(factory, '__name__', factory)!r}")
    except TypeError as err:
        raise RankerConformanceError(str(err)) from None
    failures: list[str] = []
    if not isinstance(getattr(ranker, "name", None), str) or not ranker.name:
        failures.append("the ranker's `name` must be a non-empty string")
    chosen = tuple(needs or data.needs)
    batch = data.instances("test", limit=n_instances)
    metrics, rates = {}, {}
    for name in chosen:
        need = get_need(name)
        _check_hooks(ranker, name, failures)
        if _check_batch(ranker, batch, need, deterministic=deterministic, batch_independent=batch_independent,
                        failures=failures) is None:
            continue
        result = evaluate(ranker, batch, data.labels(name, "test"), need, seed=seed, batch_size=max(1, len(batch)))
        metrics[name], rates[name] = dict(result.metrics), dict(result.rates)
    if failures:
        raise RankerConformanceError(f"ranker {getattr(ranker, 'name', '?')!r} failed {len(failures)} check(s): "
                                     + "; ".join(failures))
    return ConformanceReport(ranker.name, chosen, len(batch), metrics, rates)
