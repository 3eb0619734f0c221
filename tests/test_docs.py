"""The Sphinx documentation builds with warnings as errors, and documents every setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flask_apitokens.config import DEFAULTS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (tmp_path / "configuration.html").read_text()
    for key in DEFAULTS:
        assert key in reference, f"{key} is missing from the configuration page"
