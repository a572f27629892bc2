"""Fail on an import cycle between the modules of a package.

    python tools/check_cycles.py src/switchboard

Reads every module's imports with ``ast`` and reports each cycle among them, then exits 1.
Counted: imports that run when the module is imported (module level, class bodies, ``try`` and
``if`` blocks); not counted: imports inside functions and under ``if TYPE_CHECKING:``. Importing
``a.b.c`` also runs ``a`` and ``a.b``, so a module depends on every package above what it imports.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def module_names(root: Path) -> dict[str, Path]:
    """``{dotted name: file}`` of every module under the package directory ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _runtime_imports(node.body)
            yield from _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _runtime_imports(block)
            for handler in node.handlers:
                yield from _runtime_imports(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _runtime_imports(node.body)


def _packages(name: str) -> set[str]:
    """``name`` and every package above it."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that importing ``name`` runs directly. The packages above
    ``name`` are being imported already when it runs: they count only when it imports a name
    defined in one of them (``from switchboard.http import Outbound``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    running = _packages(name)
    found: set[str] = set()
    for node in _runtime_imports(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found |= _packages(alias.name) - running
            continue
        base = package
        for _ in range(node.level - 1 if node.level else 0):
            base = base.rpartition(".")[0]
        source = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
        if source is None:
            continue
        found |= _packages(source) - running - {source}
        for alias in node.names:
            if f"{source}.{alias.name}" in known:
                found |= _packages(f"{source}.{alias.name}") - running - {source}
            else:
                found.add(source)
    found.discard(name)
    return found & known.keys()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, …, a]``) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, component) for component in components]


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest cycle through the component's first module (breadth-first)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return sorted(component)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_cycles.py PACKAGE_DIR", file=sys.stderr)
        return 2
    known = module_names(Path(argv[0]))
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    found = cycles(graph)
    for cycle in found:
        print("import cycle: " + " -> ".join(cycle))
    if found:
        return 1
    print(f"no import cycles among {len(known)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
