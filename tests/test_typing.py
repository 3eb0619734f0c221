"""The public API keeps a host's types under ``mypy --strict`` (issue 15, item 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import need_module

ROOT = Path(__file__).resolve().parent.parent


def mypy(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    need_module("mypy")
    # --follow-imports=silent: the extension's own (non-strict) findings are not the host's.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), *map(str, files)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_a_host_module_passes_mypy_strict(tmp_path: Path) -> None:
    result = mypy(tmp_path, ROOT / "tests" / "typing_host.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_decorated_views_are_not_any(tmp_path: Path) -> None:
    """Misuse is caught: a decorator that returned Any would let these through."""
    wrong = tmp_path / "wrong_host.py"
    wrong.write_text(
        "from flask_apitokens import current_token, key_required, login_or_token_required, token_required\n"
        "@token_required\n"
        "def bare() -> int:\n"
        "    return 1\n"
        "@login_or_token_required(scopes=['a'])\n"
        "def called(x: int) -> int:\n"
        "    return x\n"
        "@key_required(scopes=['a'])\n"
        "def key(x: int) -> int:\n"
        "    return x\n"
        "a: str = bare()\n"
        "b: int = called('not an int')\n"
        "c: int = key()\n"
        "d: str = current_token.id\n"
    )
    result = mypy(tmp_path, wrong)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert 'wrong_host.py:11: error: Incompatible types in assignment (expression has type "int"' in out, out
    assert 'wrong_host.py:12: error: Argument 1 to "called" has incompatible type "str"' in out, out
    assert 'wrong_host.py:13: error: Missing positional argument "x" in call to "key"' in out, out
    assert 'wrong_host.py:14: error: Item "None" of "TokenInfo | None" has no attribute "id"' in out, out
    assert "Untyped decorator" not in out, out
