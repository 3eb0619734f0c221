"""The package's layout holds (issue 16): no import circles (``TYPE_CHECKING``
imports and imports inside functions counted), a core that knows no Flask
(its modules, and every module of the package they import however
indirectly, import neither Flask nor the Flask layer), and no module over 400
lines. ``python scripts/imports.py`` prints what these check."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "imports.py"
_spec = importlib.util.spec_from_file_location("apitokens_imports", SCRIPT)
assert _spec is not None and _spec.loader is not None
imports = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = imports
_spec.loader.exec_module(imports)

MAX_LINES = 400
CORE = ("config", "crypto", "housekeeping", "models", "recent_uses", "revocation", "service", "tokencheck",
        "tokeninfo", "tokenstore", "usertoken")
#: What no module the core reaches may import.
FLASK = frozenset(("flask", "flask_login", "flask_limiter", "flask_sqlalchemy", "flask_wtf"))


def test_no_import_circles() -> None:
    assert imports.circles(imports.graph()) == []


def test_the_graph_counts_every_import() -> None:
    edges = imports.graph()
    assert imports.circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    # ``from .state import state`` at the top, a ``TYPE_CHECKING`` import, one inside a function:
    assert "flask_apitokens.state" in edges["flask_apitokens.credentials"]
    assert "flask_apitokens.state" in edges["flask_apitokens.methods.session"]
    assert "flask_apitokens.views.ui" in edges["flask_apitokens.extension"]
    assert "flask" in imports.outside_imports(imports.modules()["flask_apitokens.web"])


@pytest.mark.parametrize("name", CORE)
def test_the_core_reaches_no_flask(name: str) -> None:
    modules, edges = imports.modules(), imports.graph()
    reaching_up = sorted(f"{module} imports {outside}" for module in imports.reached(edges, f"flask_apitokens.{name}")
                         for outside in imports.outside_imports(modules[module]) & FLASK)
    assert reaching_up == [], reaching_up


def test_no_module_is_over_400_lines() -> None:
    long = {name: count for name, count in imports.line_counts().items() if count > MAX_LINES}
    assert long == {}


def settings_read(path: Path) -> set[str]:
    """Every key read by string from a Settings object in ``path``: ``...settings["KEY"]``,
    ``loaded["KEY"]`` (extension.py's name for it) and ``_setting("KEY")`` (methods/__init__.py)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        key: object = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            holder = ast.unparse(node.value)
            if holder.endswith("settings") or holder == "loaded":
                key = node.slice.value
        elif isinstance(node, ast.Call) and ast.unparse(node.func) == "_setting" and node.args:
            key = getattr(node.args[0], "value", None)
        if isinstance(key, str):
            found.add(key)
    return found


def test_every_setting_read_by_name_is_declared() -> None:
    """Settings are read by their string names (``settings["MAX_BODY_SIZE"]``); a
    misspelled name would be a KeyError at run time: each is declared in config.py."""
    from flask_apitokens.config import SETTINGS

    read = {key for path in imports.modules().values() for key in settings_read(path)}
    assert {"MAX_BODY_SIZE", "OAUTH2_SERVER", "SESSION_TOKENS"} <= read  # each of the three ways is seen
    assert sorted(key for key in read if f"APITOKENS_{key}" not in SETTINGS) == []
