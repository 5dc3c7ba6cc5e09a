"""Imports run one way: no module of nbops imports, even lazily inside a function, one
that imports it back. (The layer and stage-library contracts are import-linter's, in
pyproject.toml, checked by `make lint`.)"""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph, modules: list[str]) -> list[list[str]]:
    edges = {
        m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in modules and i != m)
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("nbops")
    modules = sorted(m for m in graph.modules if m.startswith("nbops."))
    assert _cycles(graph, modules) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above can fail: a store that imports the registry that imports it.
    graph = grimp.ImportGraph()
    for name in ("nbops.a", "nbops.b", "nbops.c"):
        graph.add_module(name)
    graph.add_import(importer="nbops.a", imported="nbops.b")
    graph.add_import(importer="nbops.b", imported="nbops.a")
    graph.add_import(importer="nbops.b", imported="nbops.c")
    assert _cycles(graph, ["nbops.a", "nbops.b", "nbops.c"]) == [["nbops.a", "nbops.b"]]
