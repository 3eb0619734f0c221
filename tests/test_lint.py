"""The house rule, checked by the test command CI runs: ``ruff check`` and
``mypy`` are clean on the package (and ruff on the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import need_module

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    need_module("ruff")
    result = run("ruff", "check", "--no-cache", "flask_apitokens", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_package(tmp_path: Path) -> None:
    need_module("mypy")
    result = run("mypy", "--cache-dir", str(tmp_path / "cache"), "flask_apitokens")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
