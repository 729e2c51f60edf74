"""The layout the code keeps: no import circle between modules, no two packages importing each other,
no module past the size a reader can hold. The layers themselves are import-linter's contract in
pyproject.toml (``lint-imports``, run by ``make lint``)."""

from __future__ import annotations

import itertools
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pausegate", "workflows", "activities")
MAX_MODULE_LINES = 600


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative: the graph has hundreds of nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = itertools.count()
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = next(counter)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = next(counter)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "pausegate" and len(parts) > 1 else parts[0]


class TestLayout:
    def test_no_import_circle_between_modules(self) -> None:
        graph = _graph()
        edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
        assert _cycles(edges) == []

    def test_no_two_packages_import_each_other(self) -> None:
        graph = _graph()
        edges: dict[str, set[str]] = {}
        for module in graph.modules:
            for imported in graph.find_modules_directly_imported_by(module):
                if _package_of(imported) != _package_of(module):
                    edges.setdefault(_package_of(module), set()).add(_package_of(imported))
        mutual = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
        assert mutual == []

    def test_no_module_is_past_the_size_a_reader_holds(self) -> None:
        too_long = {
            str(path.relative_to(ROOT)): lines
            for package in PACKAGES
            for path in (ROOT / package).rglob("*.py")
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
        }
        assert too_long == {}

    def test_the_cycle_finder_finds_a_cycle(self) -> None:
        assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
