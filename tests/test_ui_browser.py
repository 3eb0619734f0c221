"""The token page in a real browser: headless Chromium (Debian's, driven by
Playwright) against the DEMO app built by its own factory and served by
werkzeug on 127.0.0.1, with requests as the API client.

Also writes the docs' screenshots (docs/_static/token-page*.png)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from tests.browser import ADMIN, ADMIN_PASSWORD, DOCS_STATIC, USER, USER_PASSWORD, log_in, row_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The demo app, through its own factory, on a temp SQLite database, served
    on a free port; two users made with its CLI."""
    from example_app import create_app

    folder = tmp_path_factory.mktemp("demo")
    app = create_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'demo.sqlite3'}",
                     SECRET_KEY="browser test secret key, long enough")
    runner = app.test_cli_runner()
    for name, password, extra in ((USER, USER_PASSWORD, []), (ADMIN, ADMIN_PASSWORD, ["--admin"])):
        with app.app_context():  # `flask create-user` gets one from FlaskGroup; the test runner does not
            result = runner.invoke(args=["create-user", name, "--email", f"{name}@example.com",
                                         "--password", password, *extra])
        assert result.exit_code == 0, result.output
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(app=app, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            app.extensions["sqlalchemy"].engine.dispose()


@pytest.fixture
def context(browser: Any, demo: SimpleNamespace) -> Iterator[Any]:
    """A fresh browser profile (no cookies) that records CSP violations and page errors."""
    ctx = browser.new_context(base_url=demo.url, viewport={"width": 1100, "height": 900})
    ctx.problems = []

    def on_console(message: Any) -> None:
        # The demo has no favicon; everything else logged as an error (a CSP refusal above all) counts.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            ctx.problems.append(message.text)

    ctx.on("console", on_console)
    ctx.on("weberror", lambda error: ctx.problems.append(str(error.error)))
    yield ctx
    ctx.close()


def data_api(demo: SimpleNamespace, credential: str, scheme: str = "token") -> requests.Response:
    return requests.get(f"{demo.url}/api/data", headers={"Authorization": f"{scheme} {credential}"}, timeout=10)


def test_create_copy_use_and_revoke_a_token(context: Any, demo: SimpleNamespace) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo.url)
    page = context.new_page()
    log_in(page, USER, USER_PASSWORD)

    # The demo's header links to the page.
    page.goto("/")
    page.locator("header").get_by_role("link", name="API tokens").click()
    page.wait_for_url(re.compile(r"/tokens$"))
    assert page.locator("#no-tokens").is_visible()
    assert page.locator("#key-form").count() == 0  # not an administrator

    page.get_by_label("Name").fill("browser token")
    page.get_by_label("data:read").check()
    page.get_by_label("Expires after").select_option(label="30 days")
    page.get_by_role("button", name="Create token").click()

    secret = page.locator("#new-secret")
    secret.wait_for()
    token = secret.input_value()
    assert token.startswith("apt_") and ":" in token
    assert page.get_by_text("it will not be shown again").is_visible()

    copy = page.get_by_role("button", name="Copy")
    assert copy.is_visible()  # the script showed it
    copy.click()
    page.get_by_text("Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == token

    used = data_api(demo, token)
    assert used.status_code == 200
    assert used.json()["owner"] == USER and used.json()["via"] == "page"

    page.goto("/tokens")
    assert token.split(":")[1] not in page.content()
    row = row_for(page, "token-table", "browser token")
    assert row.get_attribute("data-state") == "active"
    assert "data:read" in row.inner_text() and "page" in row.inner_text()

    row.get_by_role("link", name="Revoke").click()
    page.get_by_role("heading", name="Revoke this token?").wait_for()
    assert data_api(demo, token).status_code == 200  # asking is not revoking
    page.get_by_role("button", name="Revoke token").click()
    page.wait_for_url(re.compile(r"/tokens$"))
    assert page.get_by_text("was revoked").is_visible()
    assert row_for(page, "token-table", "browser token").get_attribute("data-state") == "revoked"

    refused = data_api(demo, token)
    assert refused.status_code == 401
    assert refused.json()["error"]
    assert context.problems == []


def test_admin_creates_a_key_that_works(context: Any, demo: SimpleNamespace) -> None:
    page = context.new_page()
    log_in(page, ADMIN, ADMIN_PASSWORD)
    form = page.locator("#key-form")
    form.get_by_label("For user").fill(USER)
    form.get_by_label("Name").fill("nightly export")
    form.get_by_label("data:read").check()
    form.get_by_label("Expires after").select_option(label="Never")
    form.get_by_role("button", name="Create API key").click()

    key = page.locator("#new-secret").input_value()
    assert key.startswith("apk_")
    assert page.get_by_role("heading", name=re.compile(f"New API key .*nightly export.* for {USER}")).is_visible()

    used = data_api(demo, key, scheme="key")
    assert used.status_code == 200 and used.json()["owner"] == USER
    assert data_api(demo, key, scheme="token").status_code == 401  # a key is presented as a key

    row = row_for(page, "key-table", "nightly export")
    assert row.get_attribute("data-state") == "active"
    assert USER in row.inner_text()

    # A personal token too, so the screenshot shows both tables and a new secret.
    page.locator("#token-form").get_by_label("Name").fill("laptop")
    page.locator("#token-form").get_by_label("data:read").check()
    page.get_by_role("button", name="Create token").click()
    page.locator("#new-secret").wait_for()
    DOCS_STATIC.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_STATIC / "token-page.png"), full_page=True)

    page.goto("/tokens")
    row_for(page, "key-table", "nightly export").get_by_role("link", name="Revoke").click()
    page.get_by_role("button", name="Revoke API key").click()
    page.wait_for_url(re.compile(r"/tokens$"))
    assert row_for(page, "key-table", "nightly export").get_attribute("data-state") == "revoked"
    assert data_api(demo, key, scheme="key").status_code == 401
    assert context.problems == []


def test_a_form_post_without_csrf_token_is_refused(context: Any, demo: SimpleNamespace) -> None:
    page = context.new_page()
    log_in(page, USER, USER_PASSWORD)
    before = page.locator("#token-table tbody tr").count() if page.locator("#token-table").count() else 0
    # The browser's own cookies, a well-formed form, no CSRF token.
    response = context.request.post(f"{demo.url}/tokens/create", form={
        "token-name": "forged", "token-scopes": "data:read", "token-expires_in_days": "30"})
    assert response.status == 400
    # The demo's CSRFProtect refuses it before the page's own form check would.
    assert "CSRF token is missing" in response.text() or "security token" in response.text()
    page.goto("/tokens")
    assert "forged" not in page.content()
    after = page.locator("#token-table tbody tr").count() if page.locator("#token-table").count() else 0
    assert after == before


def test_the_page_works_without_javascript(browser: Any, demo: SimpleNamespace) -> None:
    ctx = browser.new_context(base_url=demo.url, java_script_enabled=False)
    try:
        page = ctx.new_page()
        log_in(page, USER, USER_PASSWORD)
        page.get_by_label("Name").fill("no script")
        page.get_by_label("data:read").check()
        page.get_by_role("button", name="Create token").click()
        token = page.locator("#new-secret").input_value()
        assert page.locator("button[data-copy]").is_hidden()  # nothing to click that would not work
        assert data_api(demo, token).status_code == 200
        page.goto("/tokens")
        row_for(page, "token-table", "no script").get_by_role("link", name="Revoke").click()
        page.get_by_role("button", name="Revoke token").click()
        page.wait_for_url(re.compile(r"/tokens$"))
        assert data_api(demo, token).status_code == 401
    finally:
        ctx.close()


def test_readable_on_a_phone(browser: Any, demo: SimpleNamespace) -> None:
    ctx = browser.new_context(base_url=demo.url, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                              is_mobile=True, has_touch=True)
    try:
        page = ctx.new_page()
        log_in(page, ADMIN, ADMIN_PASSWORD)
        # Nothing wider than the screen: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        font_size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#token-name')).fontSize)")
        assert font_size >= 16  # phones zoom into smaller inputs
        if page.locator("#key-table tbody tr").count():
            cell = page.locator("#key-table tbody tr").first.locator("td").first
            assert page.evaluate("e => getComputedStyle(e).display", cell.element_handle()) == "flex"
        page.screenshot(path=str(DOCS_STATIC / "token-page-phone.png"), full_page=False)
    finally:
        ctx.close()


def test_admin_registers_a_confidential_oauth2_client_and_sees_its_secret_once(context: Any,
                                                                                demo: SimpleNamespace) -> None:
    page = context.new_page()
    log_in(page, ADMIN, ADMIN_PASSWORD)
    form = page.locator("#client-form")
    form.get_by_label("Application name").fill("Browser Reports")
    form.get_by_label("Redirect URIs (one a line)").fill("https://reports.example/callback\n"
                                                         "http://127.0.0.1:9/callback")
    form.get_by_label(re.compile("^Confidential")).check()
    form.get_by_label("data:read").check()
    form.get_by_role("button", name="Register client").click()

    page.get_by_role("heading", name=re.compile("New OAuth2 client .*Browser Reports")).wait_for()
    secret = page.get_by_label("Client secret", exact=True).input_value()
    client_id = page.locator("#new-client-id").inner_text()
    assert len(secret) >= 40 and client_id
    assert page.get_by_text("it will not be shown again").is_visible()
    row = page.locator(f'#client-table tbody tr[data-client-id="{client_id}"]')
    assert "confidential" in row.inner_text() and "https://reports.example/callback" in row.inner_text()

    # The secret is right: the token endpoint accepts it (and refuses a wrong one).
    def token_request(password: str) -> requests.Response:
        return requests.post(f"{demo.url}/oauth/token", auth=(client_id, password), timeout=10,
                             data={"grant_type": "authorization_code", "code": "not-a-code",
                                   "redirect_uri": "http://127.0.0.1:9/callback"})

    assert token_request(secret).json()["error"] == "invalid_grant"  # client authenticated, the code is bogus
    assert token_request(secret + "x").json()["error"] == "invalid_client"

    page.goto("/tokens")
    assert secret not in page.content() and page.locator("#new-secret").count() == 0
    assert page.locator(f'#client-table tbody tr[data-client-id="{client_id}"]').count() == 1
    assert context.problems == []
