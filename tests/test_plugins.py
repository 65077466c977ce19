"""External rankers: ``module:factory`` names, the ``flexbench.rankers`` entry-point group (listed by
``flexbench rankers``, part of ``eval --all``), one-line errors, and the ``check_ranker`` conformance check."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexbench import ranker as ranker_module
from flexbench.cli import app
from flexbench.plugins import all_entries, entry_point_entries, is_import_path, resolve, shadowed
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerKind, UnknownRanker, build_ranker, get_entry
from flexbench.results import ResultStore
from flexbench.testing import RankerConformanceError, check_ranker
from flexbench.types import Ranking

runner = CliRunner()
PLUGIN = textwrap.dedent('''
    from flexbench.types import Ranking

    class Reverse:
        name = "reverse"

        def __init__(self, ctx):
            self.options = dict(ctx.options)

        def rank(self, instances, need):
            return [Ranking(x.instance_id, x.candidate_ids[::-1]) for x in instances]

    def make(ctx):
        return Reverse(ctx)

    def broken(ctx):
        return 42

    NOT_A_FACTORY = 3
''')


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path holding ``fb_plugin.py`` and an installed distribution declaring two entry points."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "fb_plugin.py").write_text(PLUGIN)
    info = root / "fb_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fb-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[flexbench.rankers]\nreverse = fb_plugin:make\nrandom = fb_plugin:make\n")
    monkeypatch.syspath_prepend(str(root))
    return root


def test_import_paths_and_entry_points_resolve(site: Path) -> None:
    assert is_import_path("fb_plugin:make") and is_import_path("pkg.mod:Class.make")
    assert not is_import_path("random") and not is_import_path("a:b:c") and not is_import_path("1x:make")
    entry = get_entry("fb_plugin:make")
    assert entry.kind is RankerKind.EXTERNAL and entry.target == "fb_plugin:make"
    plugins = entry_point_entries()
    assert set(plugins) == {"reverse"} and plugins["reverse"].description == "Plugin from fb-plugin (fb_plugin:make)."
    assert shadowed() == ["random"] and get_entry("random") is ranker_module.REGISTRY["random"]  # built-in wins
    assert list(all_entries())[-1] == "reverse" and get_entry("reverse").kind is RankerKind.EXTERNAL
    assert resolve("no-such-thing") is None


def test_external_factories_get_the_context(site: Path, mock_dataset: PreparedDataset) -> None:
    ctx = ranker_module.RankerContext(mock_dataset, options={"alpha": 1})
    ranker = build_ranker("fb_plugin:make", ctx)
    assert ranker.name == "reverse" and ranker.inner.options["alpha"] == 1
    assert ranker.inner.options["registry_name"] == "fb_plugin:make" and ranker.provenance("interest") == {}


@pytest.mark.parametrize(("name", "message"), [
    ("no_such_module_xyz:make", "no module 'no_such_module_xyz' on the import path"),
    ("fb_plugin:missing", "'fb_plugin' has no attribute 'missing'"),
    ("fb_plugin:NOT_A_FACTORY", "is a int, not a factory"),
    ("fb_plugin:broken", "its factory returned int, which has no string `name`"),
])
def test_broken_plugins_are_one_line_errors(site: Path, mock_dataset: PreparedDataset, name: str,
                                            message: str) -> None:
    with pytest.raises(UnknownRanker, match=message):
        build_ranker(name, ranker_module.RankerContext(mock_dataset))


def test_rankers_lists_plugins_and_eval_all_runs_them(site: Path, data_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    listed = runner.invoke(app, ["rankers"], terminal_width=240)
    assert listed.exit_code == 0 and "reverse" in listed.output and "external" in listed.output
    assert "plugin 'random' ignored: a built-in ranker has that name" in listed.output
    table = {"random": ranker_module.REGISTRY["random"]}
    monkeypatch.setattr(ranker_module, "REGISTRY", table)
    monkeypatch.setattr("flexbench.suite.REGISTRY", table)
    result = runner.invoke(app, ["eval", "--all", "--datasets", "mock", "--markdown-dir", str(tmp_path / "lb")],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    runs = {(r.key.ranker, r.key.need) for r in ResultStore().load_runs()}
    assert ("reverse", "interest") in runs and ("random", "trend") in runs
    assert "| reverse | external |" in (tmp_path / "lb" / "mock.md").read_text()


def test_eval_of_an_import_path_shows_on_the_leaderboard(site: Path, data_root: Path) -> None:
    result = runner.invoke(app, ["eval", "fb_plugin:make", "--dataset", "mock", "--need", "novelty"])
    assert result.exit_code == 0, result.output
    board = runner.invoke(app, ["leaderboard", "--format", "csv"])
    assert board.exit_code == 0 and "mock,novelty,test,fb_plugin:make,external,True" in board.output


def test_check_ranker_passes_and_fails_with_reasons(site: Path, tmp_path: Path) -> None:
    import fb_plugin

    report = check_ranker(fb_plugin.make, workdir=tmp_path)
    assert report.name == "reverse" and report.n_instances == 8 and set(report.metrics) == {"interest", "novelty", "trend"}

    class Moody:  # a different answer on every call
        name = "moody"
        calls = 0

        def rank(self, instances, need):
            Moody.calls += 1
            return [Ranking(x.instance_id, x.candidate_ids[Moody.calls % 2:]) for x in instances]

    class BatchSensitive:  # an instance's ranking depends on its batch companions
        name = "batch-sensitive"

        def rank(self, instances, need):
            return [Ranking(x.instance_id, x.candidate_ids[len(instances) % 3:]) for x in instances]

    class Short:  # forgets instances
        name = "short"

        def rank(self, instances, need):
            return []

    with pytest.raises(RankerConformanceError, match="ranking the same batch twice gave different outputs"):
        check_ranker(lambda ctx: Moody(), workdir=tmp_path, needs=["interest"])
    with pytest.raises(RankerConformanceError, match="depends on the other instances of its batch"):
        check_ranker(lambda ctx: BatchSensitive(), workdir=tmp_path, needs=["interest"])
    assert check_ranker(lambda ctx: BatchSensitive(), workdir=tmp_path, batch_independent=False).name
    with pytest.raises(RankerConformanceError, match="returned 0 rankings for a batch of 8 instances"):
        check_ranker(lambda ctx: Short(), workdir=tmp_path, needs=["interest"])
    with pytest.raises(RankerConformanceError, match="has no `name` and `rank"):
        check_ranker(lambda ctx: object(), workdir=tmp_path)
