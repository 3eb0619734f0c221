"""The core knows no Flask: its modules, and every module of the package they
import (however indirectly, ``TYPE_CHECKING`` imports included), import
neither Flask nor a module of the Flask layer (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("config", "crypto", "housekeeping", "models", "recent_uses", "revocation", "service", "tokencheck",
        "tokeninfo", "tokenstore", "usertoken")
#: What no module the core reaches may import.
FLASK = ("flask", "flask_login", "flask_limiter", "flask_sqlalchemy", "flask_wtf")


def source(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports, wherever the import is."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            for alias in node.names:
                # ``from . import crypto`` imports a module; ``from .config import Settings`` a name of one.
                found.add(f"{base}.{alias.name}" if source(f"{base}.{alias.name}") else base)
    return found


def reached(start: str) -> dict[str, set[str]]:
    """The package's modules ``start`` reaches, each with what it imports."""
    seen: dict[str, set[str]] = {}
    todo = [start]
    while todo:
        module = todo.pop()
        path = source(module)
        if module in seen or path is None:
            continue
        seen[module] = imported(module, path)
        todo += [name for name in seen[module] if name.startswith("flask_apitokens")]
    return seen


@pytest.mark.parametrize("name", CORE)
def test_the_core_reaches_no_flask(name: str) -> None:
    reaching_up = sorted(f"{module} imports {target}" for module, targets in reached(f"flask_apitokens.{name}").items()
                         for target in targets if target.split(".")[0] in FLASK)
    assert reaching_up == [], reaching_up
