"""The demo's ``/oauth-demo`` page, clicked through like a person would over
real HTTP: start, log in, approve, call the API, refresh, revoke."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from tests.oauth2_server import consent_form


class LateApp:
    """A WSGI app set after the server is bound, so the app can know its port."""

    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


@pytest.fixture
def demo(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    from example_app import create_app
    from example_app.models import User, db

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    late = LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app = create_app(SECRET_KEY="demo test secret key, long enough", TESTING=True,
                     SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
                     OAUTH_DEMO_REDIRECT_URI=url + "/oauth-demo/callback")
    with app.app_context():
        user = User(username="demo", email="demo@example.com")
        user.set_password("demo-password")
        db.session.add(user)
        db.session.commit()
    # A second start must not register the client twice.
    from example_app.oauth_demo import register_demo_client

    register_demo_client(app)
    late.app = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, url
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_field(page: str) -> dict[str, str]:
    """The page's CSRF field, for a form post (the demo checks it on every POST)."""
    found = CSRF.search(page)
    assert found is not None, page
    return {"csrf_token": found.group(1)}


def test_the_demo_plays_a_third_party_app(demo: tuple[Any, str]) -> None:
    app, url = demo
    browser = requests.Session()
    home = browser.get(url + "/oauth-demo", timeout=10).text
    assert "Connect the app" in home
    # Without its CSRF field the button does nothing (another site's form cannot press it).
    refused = browser.post(url + "/oauth-demo/start", allow_redirects=False, timeout=10)
    assert refused.status_code == 400 and "CSRF" in refused.text

    to_server = browser.post(url + "/oauth-demo/start", data=csrf_field(home), allow_redirects=False, timeout=10)
    assert to_server.status_code == 302 and "/oauth/authorize?" in to_server.headers["Location"]
    assert "code_challenge_method=S256" in to_server.headers["Location"]
    to_login = browser.get(to_server.headers["Location"], allow_redirects=False, timeout=10)
    assert to_login.status_code == 302 and "/login?next=" in to_login.headers["Location"]
    login_page = browser.get(url + to_login.headers["Location"], timeout=10)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page.text)
    assert csrf is not None, login_page.text
    back = browser.post(url + to_login.headers["Location"], allow_redirects=False, timeout=10,
                        data={"csrf_token": csrf.group(1), "username": "demo", "password": "demo-password"})
    assert back.status_code == 302 and back.headers["Location"].startswith("/oauth/authorize?")

    consent = browser.get(url + back.headers["Location"], timeout=10)
    assert "OAuth demo app" in consent.text and "Read the demo&#39;s protected data." in consent.text
    action, fields = consent_form(consent.text)
    to_callback = browser.post(url + action, data={**fields, "apitokens_decision": "approve"},
                               allow_redirects=False, timeout=10)
    assert to_callback.headers["Location"].startswith(url + "/oauth-demo/callback?code=")
    page = browser.get(to_callback.headers["Location"], timeout=10)
    assert page.status_code == 200 and 'id="demo-token"' in page.text and "apo_" in page.text

    for button in ("call", "refresh", "revoke"):
        assert browser.post(url + f"/oauth-demo/{button}", timeout=10).status_code == 400  # no CSRF field
    called = browser.post(url + "/oauth-demo/call", data=csrf_field(page.text), timeout=10)
    assert "HTTP 200" in called.text and "Quarterly report" in called.text
    refreshed = browser.post(url + "/oauth-demo/refresh", data=csrf_field(called.text), timeout=10)
    assert "Refreshed" in refreshed.text
    assert "HTTP 200" in browser.post(url + "/oauth-demo/call", data=csrf_field(refreshed.text), timeout=10).text
    revoked = browser.post(url + "/oauth-demo/revoke", data=csrf_field(refreshed.text), timeout=10)
    assert "Revoked" in revoked.text and "Connect the app" in revoked.text

    with app.app_context():
        state = app.extensions["apitokens"]
        rows = list(state.db.session.execute(sa.select(state.models.Token)).scalars())
        clients = list(state.db.session.execute(sa.select(state.oauth2_models.Client)).scalars())
    assert [client.client_id for client in clients] == ["demo-client"]
    assert len(rows) == 4 and all(row.revoked_at is not None for row in rows)


def test_the_demo_shows_a_denial(demo: tuple[Any, str]) -> None:
    _, url = demo
    page = requests.get(url + "/oauth-demo/callback?error=access_denied&state=x", timeout=10)
    assert page.status_code == 200 and "access_denied" in page.text
    page = requests.get(url + "/oauth-demo/callback?code=abc&state=x", timeout=10)
    assert "No authorization in progress" in page.text


@pytest.fixture
def page() -> Iterator[Any]:
    """A page of a fresh headless Chromium."""
    import os

    from tests.helpers import need, need_module

    if not os.path.exists("/usr/bin/chromium"):
        need("install chromium (apt-get install -y chromium) for the browser test")
    sync_api = need_module("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


def connect_the_demo_app(page: Any, url: str) -> None:
    """Start the demo app's authorization, log in, approve, and have the app read the data."""
    page.goto(url + "/oauth-demo")
    page.click("#demo-start")
    page.fill("#username", "demo")
    page.fill("#password", "demo-password")
    page.click("button[type=submit]")
    assert page.text_content("#client-name") == "OAuth demo app"
    assert "data:read" in (page.text_content("#scopes") or "")
    page.click("button.approve")
    page.wait_for_selector("#demo-token")
    page.click("#demo-call")
    assert "Quarterly report" in (page.text_content("#demo-result") or "")


def test_a_person_clicks_through_the_demo_in_a_real_browser(demo: tuple[Any, str], page: Any) -> None:
    app, url = demo
    connect_the_demo_app(page, url)
    page.click("#demo-revoke")
    page.wait_for_selector("#demo-start")
    # The app revoked its own token; the person's approval stands: no consent page this time.
    page.click("#demo-start")
    page.wait_for_selector("#demo-token")
    page.click("#demo-revoke")
    page.wait_for_selector("#demo-start")
    # The person takes the approval back, and denies this time: the app is told.
    from example_app.models import User, db
    from flask_apitokens.oauth2 import grants_store

    with app.app_context():
        grants_store.revoke_app(db.session.execute(sa.select(User).filter_by(username="demo")).scalar_one(),
                                "demo-client")
        db.session.remove()
    page.click("#demo-start")
    page.click("button[value=deny]")
    assert "access_denied" in (page.text_content("#demo-error") or "")


def test_a_person_takes_back_an_approved_app_on_the_token_page(demo: tuple[Any, str], page: Any) -> None:
    _, url = demo
    connect_the_demo_app(page, url)

    # On the token page the app is listed, and taken back after a confirmation.
    page.goto(url + "/tokens")
    row = page.locator('#app-table tbody tr[data-client-id="demo-client"]')
    assert "OAuth demo app" in row.inner_text()
    assert row.locator('td[data-label="Live tokens"]').inner_text().strip() != "0"
    row.get_by_role("link", name="Revoke OAuth demo app").click()
    page.get_by_role("heading", name=re.compile("Revoke the access of")).wait_for()
    page.get_by_role("button", name="Revoke access").click()
    page.wait_for_url(re.compile(r"/tokens$"))
    assert "no longer has access" in page.content()
    assert page.locator("#no-apps").is_visible()

    # The app's access token and its refresh token stopped working at once.
    page.goto(url + "/oauth-demo")
    page.click("#demo-call")
    assert "HTTP 401" in page.content()
    page.click("#demo-refresh")
    assert "Refreshing failed" in (page.text_content("#demo-error") or "")
