"""Named evaluations: resolve ranker, dataset and need names, then run the harness.

:func:`run_eval` is what ``flexbench eval RANKER --dataset D --need N`` does;
:func:`run_all` is ``flexbench eval --all``: every registered ranker on every
(dataset, need) of the paper's datasets, skipping (with the reason) rankers that
raise :class:`~flexbench.ranker.RankerUnavailable` and datasets that cannot be
opened. LLM and trained rankers are limited to their first ``llm_limit``
instances by default so the CPU demo finishes in minutes; the limit is stored in
each run's provenance and shown on the leaderboard as ``n/N``.

Complete boards from the first command: a ranker of :data:`AUTO_TRAIN` whose
factory says it is unavailable *and names the training command that fixes it*
(``run `flexbench train bert4rec --dataset D```) is trained first, through the
trainer table (:mod:`flexbench.trainers`, with its own progress bar), then built
again; ``train_missing=False`` (``flexbench eval --all --no-train``) skips it with
the factory's reason instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flexbench.errors import FlexBenchError
from flexbench.harness import DEFAULT_BATCH_SIZE
from flexbench.prepared import PreparedDataset
from flexbench.ranker import (
    REGISTRY,
    Ranker,
    RankerContext,
    RankerEntry,
    RankerKind,
    RankerUnavailable,
    build_ranker,
)
from flexbench.results import ResultStore
from flexbench.secrets import check_options, redact_options
from flexbench.types import NeedSpec, RunKey, RunResult, Split
from flexbench.vocabulary import PAPER_DATASETS

SUITE_DATASETS: tuple[str, ...] = PAPER_DATASETS
LIMITED_KINDS: frozenset[RankerKind] = frozenset({RankerKind.ZERO_SHOT, RankerKind.TRAINED})
AUTO_TRAIN: dict[str, str] = {"bert4rec": "bert4rec"}
"""Rankers ``eval --all`` trains when their checkpoint is missing: ranker name -> trainer name
(BERT4Rec: about 3 min per dataset on one core)."""
DEFAULT_LLM_LIMIT = 2  # SmolLM2-135M on 2 CPU cores: about 20 s per instance (README)
LLM_BATCH_SIZE = 4  # small batches: progress and resume points every few generations


@dataclass(frozen=True, slots=True)
class EvalRequest:
    """One evaluation by names. ``options`` go to the ranker's :class:`RankerContext`.

    ``limit`` and ``batch_size`` are validated by :func:`flexbench.harness.evaluate`
    before anything is stored; the split here.
    """

    ranker: str
    dataset: str
    need: str
    split: str = Split.TEST.value
    limit: int | None = None
    seed: int = 0
    strict: bool = False
    overwrite: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    options: Mapping[str, Any] = field(default_factory=dict)
    permutations: int = 1

    def __post_init__(self) -> None:
        if self.split not in {s.value for s in Split}:
            raise FlexBenchError(f"unknown split {self.split!r}; use one of {', '.join(s.value for s in Split)}")

    @property
    def label(self) -> str:
        """The run's ranker label: ``options["label"]`` or the registry name (``/`` of a family's model as ``--``)."""
        return str(self.options.get("label") or self.ranker.replace("/", "--"))


def check_row_model(request: EvalRequest) -> None:
    """``gpt-4o`` is OpenAI's GPT-4o: another ``--model`` is its own row, ``openai:MODEL`` (unless ``label`` names it)."""
    model = request.options.get("model")
    if request.ranker == "gpt-4o" and model not in (None, "gpt-4o") and not request.options.get("label"):
        raise FlexBenchError(f"the gpt-4o row is OpenAI's GPT-4o; evaluate {model!r} as its own row: "
                             f"flexbench eval openai:{model} [--base-url URL]")


def check_need(dataset: PreparedDataset, need: str) -> NeedSpec:
    """The need ``need`` if it is known and labelled on ``dataset``; else a one-line error."""
    from flexbench.vocabulary import get_need

    spec = get_need(need)
    if need not in dataset.needs:
        raise FlexBenchError(f"dataset {dataset.name!r} has no need {need!r}; it has {', '.join(dataset.needs)}")
    return spec


def make_ranker(entry: RankerEntry | str, dataset: PreparedDataset, *, seed: int,
                options: Mapping[str, Any]) -> Ranker:
    """Build registry entry ``entry`` (or the entry named so) on ``dataset`` (may raise RankerUnavailable)."""
    from flexbench.paths import cache_dir

    return build_ranker(entry, RankerContext(dataset, seed, dict(options), cache_dir()))


def run_evals(ranker: str, dataset: str, needs: Sequence[str] | None = None, *, store: ResultStore,
              progress: bool = False, **request: Any) -> list[RunResult]:
    """``flexbench eval RANKER --dataset D [--need N]``: resolve every name once, then one run per need.

    The ranker name is resolved before the dataset is opened (a typo fails at
    once), each need is checked before anything runs, and the ranker is built
    once for all needs. ``request`` holds the other :class:`EvalRequest` fields.
    """
    from flexbench.catalog import open_dataset
    from flexbench.ranker import get_entry

    entry = get_entry(ranker)
    check_options(request.get("options") or {})
    data = open_dataset(dataset)
    requests = [EvalRequest(ranker, dataset, n, **request) for n in (needs or data.needs)]
    check_row_model(requests[0])
    for req in requests:
        check_need(data, req.need)
    first = requests[0]
    built = make_ranker(entry, data, seed=first.seed, options=first.options)
    return [run_eval(req, store=store, dataset=data, ranker=built, progress=progress) for req in requests]


def run_eval(request: EvalRequest, *, store: ResultStore, dataset: PreparedDataset | None = None,
             ranker: Ranker | None = None, progress: bool = False) -> RunResult:
    """Evaluate one registered ranker on one (dataset, need, split) and store the run."""
    from flexbench.catalog import open_dataset
    from flexbench.harness import evaluate

    check_options(request.options)  # a credential in --set is refused before anything is built or stored
    check_row_model(request)
    dataset = dataset or open_dataset(request.dataset)
    need = check_need(dataset, request.need)
    ranker = ranker or make_ranker(request.ranker, dataset, seed=request.seed, options=request.options)
    ranker.check_available(request.need)  # RankerUnavailable before anything is stored
    instances = dataset.instances(request.split)
    if not instances:
        raise FlexBenchError(f"dataset {dataset.name!r} has no {request.split!r} instances")
    options = redact_options(dict(request.options))  # what is stored never holds URL credentials
    return evaluate(
        ranker, instances, dataset.labels(request.need, request.split), need,
        key=RunKey(request.label, dataset.name, request.need, request.split), seed=request.seed,
        strict=request.strict, store=store, batch_size=request.batch_size, progress=progress,
        limit=request.limit, config={"ranker": request.ranker, "options": options},
        provenance=run_provenance(dataset, ranker.provenance(request.need), options), overwrite=request.overwrite,
        permutations=request.permutations,
    )


def run_provenance(dataset: PreparedDataset, ranker_says: Mapping[str, Any],
                   options: Mapping[str, Any]) -> dict[str, Any]:
    """What a run records besides its config: the data, then what the ranker says about itself
    (:meth:`Ranker.provenance`); ``--model`` / ``--set train_need=`` options take precedence."""
    said = dict(ranker_says)
    model = options.get("model") or said.pop("model", None)
    train_need = options.get("train_need") or said.pop("train_need", None)
    checkpoint = said.pop("checkpoint", None)
    return {"data_fingerprint": dataset.fingerprint, "dataset_variant": dataset.variant,
            "protocol_version": dataset.protocol_version, **said,
            "model": model if isinstance(model, str) else None, "train_need": train_need,
            **({"checkpoint": checkpoint} if checkpoint else {})}


@dataclass(slots=True)
class SuiteReport:
    """What ``run_all`` did: runs finished, (what, reason) skipped, (what, error) failed."""

    ran: list[RunResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_all(*, store: ResultStore, datasets: Sequence[str] = SUITE_DATASETS, limit: int | None = None,
            llm_limit: int | None = DEFAULT_LLM_LIMIT, seed: int = 0, strict: bool = False,
            overwrite: bool = False, say: Callable[[str], None] = print, progress: bool = False,
            permutations: int = 1, train_missing: bool = True) -> SuiteReport:
    """Every registered ranker on every (dataset, need) that can run here (module docstring);
    each instance ranked under ``permutations`` display orders (:mod:`flexbench.display`)."""
    from flexbench.catalog import check_dataset, open_dataset
    from flexbench.plugins import all_entries

    for name in datasets:  # a typo is an error before anything runs, not a skipped dataset
        check_dataset(name)
    report = SuiteReport()
    for name in datasets:
        try:
            dataset = open_dataset(name)
        except (ImportError, FlexBenchError) as err:
            _note(report.skipped, f"dataset {name}", err, say, "skip")
            continue
        untrained: list[tuple[str, str]] = []
        for entry in all_entries(REGISTRY).values():  # the registry, then installed plugins
            what = f"{entry.name} on {name}"
            limited = entry.kind in LIMITED_KINDS
            run_limit = llm_limit if limited and llm_limit else limit
            config = {"ranker": entry.name, "options": {}, "seed": seed, "strict": strict,
                      **({"permutations": permutations} if permutations > 1 else {})}
            stored = [_stored_complete(store, RunKey(entry.name, name, need), dataset, config, run_limit)
                      for need in dataset.needs]
            if not overwrite and all(stored):
                report.ran.extend(r for r in stored if r is not None)
                say(f"done {what}: stored runs are complete (use --overwrite to redo)")
                continue
            try:
                ranker = _build_or_train(entry, dataset, seed=seed, train=train_missing, say=say)
            except RankerUnavailable as err:
                if entry.kind is RankerKind.TRAINED:  # one line for all of them below
                    untrained.append((entry.name, str(err)))
                    continue
                _note(report.skipped, what, err, say, "skip")
                continue
            except Exception as err:  # noqa: BLE001 - one broken method must not stop the suite
                _note(report.failed, what, err, say, "FAIL")
                continue
            for need in dataset.needs:
                request = EvalRequest(entry.name, name, need, limit=run_limit, seed=seed, strict=strict,
                                      overwrite=overwrite, batch_size=LLM_BATCH_SIZE if limited else DEFAULT_BATCH_SIZE,
                                      permutations=permutations)
                try:
                    report.ran.append(run_eval(request, store=store, dataset=dataset, ranker=ranker,
                                               progress=progress))
                except RankerUnavailable as err:  # e.g. a policy trained for some needs only
                    _note(report.skipped, f"{what}/{need}", err, say, "skip")
                except Exception as err:  # noqa: BLE001
                    _note(report.failed, f"{what}/{need}", err, say, "FAIL")
        _note_untrained(report, name, untrained, say)
    return report


def _build_or_train(entry: RankerEntry, dataset: PreparedDataset, *, seed: int, train: bool,
                    say: Callable[[str], None]) -> Ranker:
    """Build ``entry``; if it is unavailable for want of a checkpoint that :data:`AUTO_TRAIN` may make
    (module docstring) and ``train`` is set, train that checkpoint first and build it again."""
    try:
        return make_ranker(entry, dataset, seed=seed, options={})
    except RankerUnavailable as err:
        trainer = AUTO_TRAIN.get(entry.name)
        if not train or trainer is None or f"flexbench train {trainer}" not in str(err):
            raise
        say(f"train {trainer} on {dataset.name}: {err}. Training it now (skip with --no-train)")
    from flexbench.paths import checkpoint_dir
    from flexbench.trainers import TrainRequest, get_trainer

    spec = get_trainer(trainer)
    out = checkpoint_dir(trainer, dataset.name, None if not spec.per_need else "+".join(dataset.needs))
    spec.load()(TrainRequest(method=trainer, dataset=dataset.name, needs=tuple(dataset.needs), out_dir=out,
                             seed=seed, options=dict(spec.options)))
    return make_ranker(entry, dataset, seed=seed, options={})


def _note_untrained(report: SuiteReport, dataset: str, untrained: Sequence[tuple[str, str]],
                    say: Callable[[str], None]) -> None:
    """Record each (trained ranker, reason) skipped on ``dataset``; say so in one line, the first reason as example."""
    if not untrained:
        return
    report.skipped.extend((f"{name} on {dataset}", reason) for name, reason in untrained)
    names = ", ".join(name for name, _ in untrained)
    first, reason = untrained[0]
    say(f"skip {len(untrained)} trained rankers on {dataset} ({names}); e.g. {first}: {reason}")


def _stored_complete(store: ResultStore, key: RunKey, dataset: PreparedDataset, config: Mapping[str, Any],
                     limit: int | None) -> RunResult | None:
    """The stored run of ``key`` if it is complete and was made exactly as requested now."""
    try:
        run = store.load_run(key)
    except FlexBenchError:  # a bad file: rerunning reports it by name (FAIL) and the suite goes on
        return None
    if run is None or not run.complete:
        return None
    prov = run.provenance
    same = (prov.get("config") == dict(config) and prov.get("data_fingerprint") == dataset.fingerprint
            and prov.get("limit") == limit)
    return run if same else None


def _note(sink: list[tuple[str, str]], what: str, err: BaseException, say: Callable[[str], None],
          verb: str) -> None:
    reason = str(err) if isinstance(err, FlexBenchError) else f"{type(err).__name__}: {err}"
    sink.append((what, reason))
    say(f"{verb} {what}: {reason}")
