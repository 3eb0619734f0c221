"""The token page after a leak, in headless Chromium against the demo app: a
token used from several addresses shows them, a reported one shows
"Revoked: reported as leaked".

Also writes the leaks page's screenshot (docs/_static/token-page-leaks.png)
when APITOKENS_WRITE_SCREENSHOTS=1, like tests/test_ui_browser.py."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.browser import DOCS_STATIC, USER, USER_PASSWORD, log_in, row_for
from tests.oauth2_server import Served, serve

pytestmark = pytest.mark.slow

AGENTS = {
    "127.0.0.2": "nightly-export/2.4 (python-requests/2.32)",
    "127.0.0.3": "curl/8.5.0",
    "127.0.0.4": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The demo app through its own factory, every use recorded (interval 0)."""
    from example_app import create_app

    folder = tmp_path_factory.mktemp("demo-leaks")
    app = create_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'demo.sqlite3'}",
                     SECRET_KEY="browser test secret key, long enough", APITOKENS_LAST_USED_INTERVAL=0)
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["create-user", USER, "--email", f"{USER}@example.com",
                                                    "--password", USER_PASSWORD])
    assert result.exit_code == 0, result.output
    with serve(app) as served:
        yield served
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()


def use_from(demo: Served, source: str, token: str) -> int:
    """GET /api/data from another loopback address (all of 127.0.0.0/8 is local)."""
    connection = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/api/data", headers={"Authorization": f"token {token}",
                                                       "User-Agent": AGENTS[source]})
        return connection.getresponse().status
    finally:
        connection.close()


def create_token(page: Any, name: str) -> str:
    page.locator("#token-form").get_by_label("Name").fill(name)
    page.locator("#token-form").get_by_label("data:read").check()
    page.get_by_role("button", name="Create token").click()
    value = page.locator("#new-secret").input_value()
    assert value.startswith("apt_")
    page.goto("/tokens")
    return str(value)


def test_recent_uses_and_a_reported_token_on_the_page(browser: Any, demo: Served) -> None:  # noqa: F811
    context = browser.new_context(base_url=demo.url, viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    context.on("weberror", lambda error: problems.append(str(error.error)))
    try:
        page = context.new_page()
        log_in(page, USER, USER_PASSWORD)
        exporter = create_token(page, "nightly export")
        leaked = create_token(page, "pasted in a gist")
        for source in AGENTS:
            assert use_from(demo, source, exporter) == 200
        assert use_from(demo, "127.0.0.3", leaked) == 200

        # Anyone who finds the token reports it; no login, always the same answer.
        answer = requests.post(f"{demo.url}/api/credentials/revoke", json={"credentials": [leaked]}, timeout=10)
        assert answer.status_code == 202
        assert use_from(demo, "127.0.0.3", leaked) == 401

        page.goto("/tokens")
        reported = row_for(page, "token-table", "pasted in a gist")
        assert reported.get_attribute("data-state") == "revoked"
        assert reported.locator(".apitokens-badge").inner_text() == "Revoked: reported as leaked"
        assert reported.get_by_role("link", name=re.compile("Revoke")).count() == 0
        used = row_for(page, "token-table", "nightly export")
        addresses = used.locator(".apitokens-uses li code").all_inner_texts()
        assert addresses == ["127.0.0.4", "127.0.0.3", "127.0.0.2"]  # newest first
        assert AGENTS["127.0.0.2"] in used.locator(".apitokens-uses").inner_text()
        assert problems == []
        DOCS_STATIC.mkdir(parents=True, exist_ok=True)
        page.locator("#your-tokens").scroll_into_view_if_needed()
        page.screenshot(path=str(DOCS_STATIC / "token-page-leaks.png"), full_page=False,
                        clip={"x": 0, "y": 0, "width": 1100, "height": 528})
    finally:
        context.close()
