"""External rankers without forking: ``module:factory`` names and the ``flexbench.rankers`` entry points.

Two ways to put a ranker that lives outside this repository on the benchmark:

* **By import path.** ``flexbench eval my_pkg.rankers:make --dataset mock`` imports
  ``my_pkg.rankers`` (from ``sys.path``: an installed package, the current
  directory or ``PYTHONPATH``) and calls ``make(ctx)`` with the same
  :class:`~flexbench.ranker.RankerContext` the built-in rankers get. The run is
  stored under the name as given (``--set label=...`` picks another).
* **By entry point.** An installed package declares, in its ``pyproject.toml``::

      [project.entry-points."flexbench.rankers"]
      my-ranker = "my_pkg.rankers:make"

  and ``my-ranker`` then appears in ``flexbench rankers``, runs with
  ``flexbench eval my-ranker``, and is part of ``flexbench eval --all``. A
  plugin name that is already a built-in ranker's is ignored (the built-in wins;
  :func:`shadowed` lists such names).

A factory may return a full :class:`~flexbench.ranker.Ranker` or any object with
``name`` and ``rank(instances, need)``; the registry adds the default hooks. Its
``--set`` options are not checked (``accepts=None``): FlexBench cannot know what an
outside factory reads.
Plugins are of kind ``external`` on the leaderboard. Nothing is imported until
a ranker is built, so ``flexbench rankers`` stays fast and a broken plugin
breaks only its own runs. :func:`flexbench.testing.check_ranker` is the
conformance check to call from a plugin's own tests.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass

from flexbench import ranker as _ranker
from flexbench.ranker import Factory, Ranker, RankerContext, RankerEntry, RankerKind, UnknownRanker

ENTRY_POINT_GROUP = "flexbench.rankers"
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_IMPORT_PATH = re.compile(rf"^({_DOTTED}):({_DOTTED})$")


@dataclass(frozen=True, slots=True)
class ExternalEntry(RankerEntry):
    """A registry row for a ranker outside :data:`~flexbench.ranker.REGISTRY`; loading errors are one line."""

    def load(self) -> Factory:
        """Import ``module`` and follow the (dotted) attribute path to the factory."""
        module_name, _, attr = self.target.partition(":")
        try:
            obj = importlib.import_module(module_name)
        except ImportError as err:
            raise UnknownRanker(f"ranker {self.name!r}: cannot import {module_name!r} ({err}); "
                                f"is it installed or on PYTHONPATH?") from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise UnknownRanker(f"ranker {self.name!r}: {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not callable(obj):
            raise UnknownRanker(f"ranker {self.name!r}: {self.target} is a {type(obj).__name__}, not a factory "
                                f"taking a RankerContext")
        return _checked(obj, self.name)


def _checked(factory: Factory, name: str) -> Factory:
    """``factory`` whose result must have ``name`` and ``rank``: otherwise a one-line error naming the plugin."""
    def build(ctx: RankerContext) -> Ranker:
        ranker = factory(ctx)
        if not isinstance(getattr(ranker, "name", None), str) or not callable(getattr(ranker, "rank", None)):
            raise UnknownRanker(f"ranker {name!r}: its factory returned {type(ranker).__name__}, which has no "
                                f"string `name` and `rank(instances, need)`")
        return ranker

    return build


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the ``pkg.module:factory`` form."""
    return _IMPORT_PATH.match(name) is not None


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _builtin(registry: Mapping[str, RankerEntry] | None) -> Mapping[str, RankerEntry]:
    return _ranker.REGISTRY if registry is None else registry


def entry_point_entries(registry: Mapping[str, RankerEntry] | None = None) -> dict[str, ExternalEntry]:
    """Every installed ``flexbench.rankers`` entry point whose name is not a built-in ranker's, by name."""
    builtin = _builtin(registry)
    out: dict[str, ExternalEntry] = {}
    for ep in _entry_points():
        if ep.name in builtin or ep.name in out:
            continue
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        target = f"{ep.module}:{ep.attr}" if ep.attr else ep.module
        out[ep.name] = ExternalEntry(ep.name, target, RankerKind.EXTERNAL, f"Plugin from {dist} ({target}).",
                                     accepts=None)
    return out


def shadowed(registry: Mapping[str, RankerEntry] | None = None) -> list[str]:
    """Entry-point names ignored because a built-in ranker has the same name."""
    builtin = _builtin(registry)
    return [ep.name for ep in _entry_points() if ep.name in builtin]


def all_entries(registry: Mapping[str, RankerEntry] | None = None) -> dict[str, RankerEntry]:
    """The built-in registry (``registry``, default :data:`~flexbench.ranker.REGISTRY`) plus installed plugins."""
    builtin = _builtin(registry)
    return {**builtin, **entry_point_entries(builtin)}


def resolve(name: str) -> RankerEntry | None:
    """The entry of an installed plugin named ``name``, or of the import path ``name``; None otherwise.

    An import path whose module cannot be found is a one-line :class:`~flexbench.ranker.UnknownRanker`
    (checked without importing the module itself).
    """
    plugins = entry_point_entries()
    if name in plugins:
        return plugins[name]
    if not is_import_path(name):
        return None
    module_name = name.partition(":")[0]
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UnknownRanker(f"ranker {name!r}: no module {module_name!r} on the import path; install it or "
                            f"add its directory to PYTHONPATH")
    return ExternalEntry(name, name, RankerKind.EXTERNAL, f"External factory {name}.", accepts=None)


def is_external(name: str) -> bool:
    """Whether ``name`` names a plugin or an import path (the leaderboard's ``external`` kind)."""
    return is_import_path(name) or name in {ep.name for ep in _entry_points()}
