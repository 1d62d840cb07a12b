"""The package structure docs/architecture.md promises: imports flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(pkg: str) -> dict[str, set[str]]:
    """Module -> top-level packages / ``pkg`` modules it imports (anywhere in the file)."""
    out: dict[str, set[str]] = {}
    for f in sorted((ROOT / pkg).glob("*.py")):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                parts = n.split(".")
                deps.add(".".join(parts[:2]) if parts[0] == pkg else parts[0])
        out[f"{pkg}.{f.stem}"] = deps
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_search_has_no_import_cycle() -> None:
    assert _cycles(_imports("search")) == []


def test_cost_models_and_workloads_depend_on_dse_core_only() -> None:
    core = {"dse.types", "dse.errors", "dse.units", "dse.registry", "dse.config", "dse.limits",
            "dse.secrets", "dse.signals"}
    for pkg, banned in (("cost_models", {"workloads", "search"}), ("workloads",
                                                                   {"cost_models", "search"})):
        for mod, deps in _imports(pkg).items():
            assert not (deps & banned), (mod, deps & banned)
        for f in (ROOT / pkg).glob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and \
                        node.module.startswith("dse."):
                    assert node.module in core, (f.name, node.module)


def test_the_searcher_names_match_the_registry() -> None:
    from search.config import SEARCHER_NAMES
    from search.registry import SEARCHERS

    assert sorted(SEARCHER_NAMES) == SEARCHERS.names()


def test_no_file_of_the_search_package_is_over_600_lines() -> None:
    long = {f.name: n for f in (ROOT / "search").glob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > 600}
    # space.py: one frozen dataclass and its grid views (the Optuna view is part of it)
    assert set(long) <= {"space.py"}, long
