"""Headless Chromium for the browser tests (Debian's, driven by Playwright's
Python package, no ``playwright install``), and steps on the demo's pages.
conftest.py's ``browser`` fixture launches it."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import need

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# The docs' screenshots are rewritten only when asked (APITOKENS_WRITE_SCREENSHOTS=1),
# so an ordinary run leaves the work tree clean; otherwise they go to a temp dir.
DOCS_STATIC = (Path(__file__).resolve().parent.parent / "docs" / "_static"
               if os.environ.get("APITOKENS_WRITE_SCREENSHOTS") == "1" else Path(tempfile.mkdtemp()))
USER, USER_PASSWORD = "demo", "demo-password-1"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1"


@contextmanager
def launched_chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the browser tests need Playwright's Python package: pip install playwright (no 'playwright install')")
    if shutil.which(CHROMIUM) is None:
        need(f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page: Any, username: str, password: str) -> None:
    page.goto("/tokens")
    assert re.search(r"/login\?next=(%2F|/)tokens$", page.url), page.url
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/tokens$"))


def row_for(page: Any, table: str, name: str) -> Any:
    return page.locator(f"#{table} tbody tr", has_text=name)
