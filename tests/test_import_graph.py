"""No import cycle: the module-level import graph of flexbench, needs and baselines is acyclic (flexbench.leaderboard
never imports flexbench.tables), and the modules between the two packages import on their own in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flexbench", "needs", "baselines")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules ``name`` imports at module level (``if TYPE_CHECKING:`` blocks and function bodies excluded)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for stmt in node.body if isinstance(node, ast.Try) else [node]:
            if isinstance(stmt, ast.Import):
                found.update(a.name for a in stmt.names)
            elif isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level:
                    parent = package.split(".")[:len(package.split(".")) - stmt.level + 1]
                    base = ".".join(parent + ([stmt.module] if stmt.module else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in stmt.names)
    return (found & known) - {name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_module_level_import_graph_is_acyclic() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    assert "flexbench.leaderboard.html" in graph["flexbench.tables.html"]  # the graph sees real edges
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    leaderboard = [m for m in graph if m.startswith("flexbench.leaderboard")]
    assert not any(dep.startswith("flexbench.tables") for m in leaderboard for dep in graph[m])  # one direction


FRESH = ("flexbench.leaderboard.model", "flexbench.leaderboard.html", "flexbench.tables.html", "flexbench.tables.build",
         "flexbench.tables.significance", "flexbench.plugins", "flexbench.export")
"""Modules whose import order once mattered (tables.build <-> tables.html) or that sit between packages."""


def test_each_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = FRESH
    procs = {name: subprocess.Popen([sys.executable, "-c", f"import {name}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True) for name in names}
    failed = {name: proc.communicate(timeout=120)[1][-400:] for name, proc in procs.items()}
    assert {n: err for n, err in failed.items() if procs[n].returncode != 0} == {}
