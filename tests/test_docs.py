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
    assert "* DAY" not in reference and "2592000" in reference  # values, not the source's arithmetic


def test_the_configuration_page_shows_defaults_as_values(tmp_path: Path) -> None:
    sys.path.insert(0, str(DOCS))
    try:
        from configref import readable
    finally:
        sys.path.remove(str(DOCS))
    assert readable("APITOKENS_SESSION_EXPIRES_IN", DEFAULTS["APITOKENS_SESSION_EXPIRES_IN"]) == "``2592000`` (30 days)"
    assert readable("APITOKENS_OAUTH2_ACCESS_TOKEN_EXPIRES_IN", 3600) == "``3600`` (1 hour)"
    assert readable("APITOKENS_ROTATION_GRACE", 600) == "``600`` (10 minutes)"
    assert readable("APITOKENS_KEY_EXPIRES_IN", None) == "``None``"
    assert readable("APITOKENS_URL_PREFIX", "/api") == "``'/api'``"
    assert readable("APITOKENS_PASSWORD_EXCHANGE", False) == "``False``"
