"""The package's import graph, every import counted (``TYPE_CHECKING`` ones and
imports inside functions too): ``python scripts/imports.py`` prints each
module's imports of the package, the import circles and the longest modules.
tests/test_layout.py holds the package to what it prints."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "flask_apitokens"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: set[str]) -> dict[str, set[str]]:
    """``{imported module: {names}}`` for the package's modules that ``name`` imports."""
    found: dict[str, set[str]] = {}
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE):
                    found.setdefault(alias.name, set())
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, path.name == "__init__.py", node)
            if not target.startswith(PACKAGE):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # ``from . import crypto`` imports the module crypto
                    found.setdefault(sub, set())
                else:
                    found.setdefault(target, set()).add(alias.name)
    found.pop(name, None)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: set(imports_of(name, path, known)) & known for name, path in mods.items()}


def outside_imports(path: Path) -> set[str]:
    """Top-level names of the outside packages a module imports, wherever the
    import is (``TYPE_CHECKING`` ones included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {PACKAGE}


def reached(edges: dict[str, set[str]], start: str) -> set[str]:
    """``start`` and every module it imports, however indirectly."""
    seen = {start}
    todo = [start]
    while todo:
        for name in edges.get(todo.pop(), ()):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def line_counts() -> dict[str, int]:
    return {name: len(path.read_text().splitlines()) for name, path in modules().items()}


def main() -> None:
    edges = graph()
    short = lambda name: name.removeprefix(PACKAGE + ".") or PACKAGE  # noqa: E731
    for name in sorted(edges):
        print(f"{short(name)} -> {', '.join(short(n) for n in sorted(edges[name])) or '-'}")
    found = circles(edges)
    print(f"\n{len(found)} import circle(s)" + "".join(
        f"\n  {len(c)} modules: {', '.join(short(n) for n in c)}" for c in found))
    print("\nlongest modules:")
    for name, count in sorted(line_counts().items(), key=lambda item: -item[1])[:8]:
        print(f"  {count:4d} {short(name)}")


if __name__ == "__main__":
    main()
