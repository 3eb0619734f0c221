"""The core knows no Flask: its modules import neither Flask nor a module of
the Flask layer, not even for a type annotation (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flask_apitokens"
CORE = ("config", "crypto", "housekeeping", "models", "recent_uses", "revocation", "service", "tokencheck",
        "tokeninfo", "tokenstore", "unprepared", "usertoken")
#: The Flask layer: what a core module must not import.
FLASK_LAYER = ("flask", "flask_login", "flask_limiter", "flask_apitokens.credentials", "flask_apitokens.decorators",
               "flask_apitokens.extension", "flask_apitokens.methods", "flask_apitokens.views",
               "flask_apitokens.oauth2", "flask_apitokens.openapi", "flask_apitokens.ratelimit")


def imported(name: str) -> set[str]:
    """Every module ``flask_apitokens.<name>`` imports, wherever the import is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = "flask_apitokens" + (f".{node.module}" if node.module else "")
                found.update(f"{base}.{alias.name}" if not node.module else base for alias in node.names)
            else:
                found.add(node.module or "")
    return found


@pytest.mark.parametrize("name", CORE)
def test_a_core_module_imports_nothing_of_flask(name: str) -> None:
    reaching_up = sorted(module for module in imported(name)
                         if any(module == edge or module.startswith(edge + ".") for edge in FLASK_LAYER))
    assert reaching_up == [], f"flask_apitokens.{name} imports {reaching_up}"
